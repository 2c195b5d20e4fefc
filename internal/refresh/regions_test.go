//go:build linux

package refresh

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/secretfetch/secretfetch/internal/fetch"
	"github.com/secretfetch/secretfetch/internal/plan"
	"github.com/secretfetch/secretfetch/internal/smfake"
	"github.com/secretfetch/secretfetch/internal/smfake/smfaketest"
)

const replicaRegion = "us-west-2"

// twoRegions is a fakeAWS whose primary (us-east-1) can be stopped, and a
// replica fake in us-west-2 holding the same secrets with values of its
// own.
func twoRegions(t *testing.T, secrets map[string]string) (f *fakeAWS, replica *smfake.Server, stopPrimary func()) {
	t.Helper()
	smfaketest.IsolateEnv(t)
	primary := smfake.New(smfake.WithReplicaSuffixes())
	replica = smfake.New(smfake.WithRegion(replicaRegion), smfake.WithReplicaSuffixes())
	psrv, rsrv := httptest.NewServer(primary), httptest.NewServer(replica)
	t.Cleanup(psrv.Close)
	t.Cleanup(rsrv.Close)
	for name, v := range secrets {
		if _, _, err := primary.CreateSecret(name, smfake.Value{String: v}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := replica.CreateSecret(name, smfake.Value{String: v}); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.LoadDefaultConfig(context.Background(),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(smfake.DefaultAccessKeyID, smfake.DefaultSecretAccessKey, "")))
	if err != nil {
		t.Fatal(err)
	}
	clients := func(region string) (API, error) {
		url := psrv.URL
		if region == replicaRegion {
			url = rsrv.URL
		}
		return SDKClients(cfg, func(o *secretsmanager.Options) { o.BaseEndpoint = aws.String(url) })(region)
	}
	return &fakeAWS{fk: primary, clients: clients}, replica, psrv.Close
}

// The primary region stops mid-life: the sidecar polls the replica, and a
// new version there reaches the files; the counts say which region served.
func TestPollFailsOverMidLife(t *testing.T) {
	f, replica, stopPrimary := twoRegions(t, map[string]string{"db": "v1", "api": "k1"})
	calls := &fetch.Calls{}
	var failovers []fetch.Failover
	e := f.env(t, &plan.Plan{FailoverRegion: replicaRegion, Secrets: []plan.Secret{{File: "db", ID: "db"}, {File: "api", ID: "api"}}},
		Options{Calls: calls, OnFailover: func(fo fetch.Failover) { failovers = append(failovers, fo) }})
	if rep := e.poll(t); rep.Unchanged != 2 || replica.Count("", "") != 0 {
		t.Fatalf("with the primary up: %+v, %d calls to the replica; want 2 unchanged and none", rep, replica.Count("", ""))
	}

	stopPrimary()
	if _, err := replica.PutSecretValue("db", smfake.Value{String: "v2"}); err != nil {
		t.Fatal(err)
	}
	rep := e.poll(t)
	if len(rep.Failures) != 0 || e.read(t, "db") != "v2" {
		t.Fatalf("the primary down: %+v, db %q; want the replica's new version", rep, e.read(t, "db"))
	}
	if len(failovers) < 2 || failovers[0].From != "us-east-1" || failovers[0].To != replicaRegion {
		t.Errorf("failovers: %+v, want DescribeSecret of each secret moved to %s", failovers, replicaRegion)
	}
	byKey := map[string]int{}
	for _, c := range calls.Counts() {
		byKey[c.API+"/"+c.Region+"/"+c.Result] = c.Count
	}
	// The fake's replica gives its versions IDs of its own (AWS's keep the
	// primary's), so api counts as new there too: two GetSecretValue.
	if byKey["DescribeSecret/"+replicaRegion+"/OK"] != 2 || byKey["GetSecretValue/"+replicaRegion+"/OK"] != 2 ||
		byKey["DescribeSecret/us-east-1/"+fetch.CodeConnection] != 2*fetch.DefaultPrimaryAttempts || byKey["GetSecretValue/us-east-1/OK"] != 0 {
		t.Errorf("calls: %v", byKey)
	}
}

// AccessDenied in the primary is an answer: the files are kept and the
// replica is never asked.
func TestPollDoesNotFailOverOnDenial(t *testing.T) {
	f, replica, _ := twoRegions(t, map[string]string{"db": "v1"})
	e := f.env(t, &plan.Plan{FailoverRegion: replicaRegion, Secrets: []plan.Secret{{File: "db", ID: "db"}}}, Options{})
	f.fk.InjectFault(smfake.Fault{Code: "AccessDeniedException"})
	rep := e.poll(t)
	if len(rep.Failures) != 1 || rep.Failures[0].Code != "AccessDeniedException" || e.read(t, "db") != "v1" {
		t.Errorf("denied in the primary: %+v, db %q; want the denial and the files kept", rep, e.read(t, "db"))
	}
	if n := replica.Count("", ""); n != 0 {
		t.Errorf("the replica got %d calls, want none", n)
	}
}

// In batch mode a poll costs ceil(S/20) calls and no GetSecretValue, also
// for a new version: the batch brought its value.
func TestBatchPollCalls(t *testing.T) {
	const secrets = 25
	values := map[string]string{}
	p := &plan.Plan{Batch: true}
	for i := range secrets {
		id := fmt.Sprintf("s%d", i)
		values[id] = "v1-" + id
		p.Secrets = append(p.Secrets, plan.Secret{File: id, ID: id})
	}
	p.Secrets = append(p.Secrets, plan.Secret{File: "prev", ID: "s0", VersionStage: "AWSPREVIOUS"})
	f := newFake(t, values)
	if _, err := f.fk.PutSecretValue("s0", smfake.Value{String: "v2-s0"}); err != nil {
		t.Fatal(err)
	}
	e := f.env(t, p, Options{})
	for range 3 {
		e.poll(t)
	}
	if b, d, g := e.calls("BatchGetSecretValue", ""), e.calls(opDescribe, ""), e.calls(opGet, ""); b != 3*2 || d != 3 || g != 0 {
		t.Fatalf("3 polls of 25 secrets and one AWSPREVIOUS: %d BatchGetSecretValue, %d DescribeSecret, %d GetSecretValue; want 6, 3 and 0", b, d, g)
	}
	e.fk.ResetRequests()
	e.put(t, "s7", "v2-s7")
	rep := e.poll(t)
	if rep.Changed != 1 || e.read(t, "s7") != "v2-s7" {
		t.Fatalf("a new version of s7: %+v, s7 %q", rep, e.read(t, "s7"))
	}
	if b, g := e.calls("BatchGetSecretValue", ""), e.calls(opGet, ""); b != 2 || g != 0 {
		t.Errorf("a poll with a new version: %d BatchGetSecretValue and %d GetSecretValue, want 2 and 0", b, g)
	}
	e.noValues(t, "v2-s7", "v1-s1")
}

// A batch that reports a secret missing keeps its files, names it, and
// the other secrets still refresh.
func TestBatchPollMissing(t *testing.T) {
	e := newEnv(t, map[string]string{"a": "a1", "b": "b1"}, &plan.Plan{Batch: true, Secrets: []plan.Secret{{File: "a", ID: "a"}, {File: "b", ID: "b"}}}, Options{})
	e.put(t, "b", "b2")
	e.fk.InjectFault(smfake.Fault{Operation: "BatchGetSecretValue", SecretID: "a", Code: "ResourceNotFoundException"})
	rep := e.poll(t)
	if len(rep.Failures) != 1 || rep.Failures[0].ID != "a" || rep.Failures[0].Code != "ResourceNotFoundException" {
		t.Errorf("failures %+v, want a with ResourceNotFoundException", rep.Failures)
	}
	if e.read(t, "a") != "a1" || e.read(t, "b") != "b2" {
		t.Errorf("a %q b %q, want a kept and b refreshed", e.read(t, "a"), e.read(t, "b"))
	}
}

// A throttled sidecar stretches its interval, doubling up to MaxStretch,
// and comes back to it once the quota has room.
func TestRunStretchesWhenThrottled(t *testing.T) {
	e := newEnv(t, map[string]string{"db": "v1"}, &plan.Plan{Secrets: []plan.Secret{{File: "db", ID: "db"}}}, Options{})
	e.fk.InjectFault(smfake.Fault{Operation: opDescribe, Code: "ThrottlingException"})
	var waits []time.Duration
	now := time.Date(2026, 12, 1, 4, 0, 0, 0, time.UTC)
	e.r.opts.Jitter = -1
	e.r.opts.Now = func() time.Time { return now }
	e.r.opts.Sleep = func(ctx context.Context, d time.Duration) error {
		waits = append(waits, d)
		now = now.Add(d)
		switch len(waits) {
		case 6:
			e.fk.ClearFaults()
		case 10:
			return context.Canceled
		}
		return nil
	}
	if err := e.r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	m := time.Minute
	want := []time.Duration{m, 2 * m, 4 * m, 8 * m, 8 * m, 8 * m, 4 * m, 2 * m, m, m}
	if fmt.Sprint(waits) != fmt.Sprint(want) {
		t.Errorf("waits %v, want %v", waits, want)
	}
	if !strings.Contains(e.log.String(), "stretching the refresh interval") || !strings.Contains(e.log.String(), "back to the refresh interval") {
		t.Errorf("the log does not say the interval stretched and came back:\n%s", e.log)
	}
	// The counts' line: the first after the first poll, then one every
	// CallsLogEvery (10 waits here, 39 minutes of the fake clock).
	var lines []string
	for _, l := range strings.Split(e.log.String(), "\n") {
		if strings.Contains(l, `"msg":"`+CallsLogMessage+`"`) {
			lines = append(lines, l)
		}
	}
	if len(lines) < 2 || !strings.Contains(lines[0], `"api":"DescribeSecret","region":"us-east-1","result":"ThrottlingException"`) {
		t.Errorf("the %q lines: %q, want at least two, the first counting throttled DescribeSecret calls", CallsLogMessage, lines)
	}
}

// The first poll is spread over the whole interval, so that pods started
// together poll at the steady rate from the start.
func TestFirstWaitSpread(t *testing.T) {
	r := &Refresher{opts: Options{Interval: 100 * time.Second, Jitter: 0.1}}
	var quarters [4]int
	for range 4000 {
		w := r.firstWait()
		if w <= 0 || w > r.opts.Interval {
			t.Fatalf("first wait %v outside (0, %v]", w, r.opts.Interval)
		}
		quarters[min(int(w/(25*time.Second)), 3)]++
	}
	for i, n := range quarters {
		if n < 800 || n > 1200 {
			t.Errorf("quarter %d of the interval got %d of 4000 first polls, want about 1000: %v", i, n, quarters)
		}
	}
}
