package fetch

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/secretfetch/secretfetch/internal/plan"
	"github.com/secretfetch/secretfetch/internal/smfake"
	"github.com/secretfetch/secretfetch/internal/smfake/smfaketest"
)

const (
	primaryRegion = "us-east-1"
	replicaRegion = "us-west-2"
)

// regions is a primary fake and a replica fake, each in its region, with
// replica suffixes so that a secret's ARN differs only in the region.
type regions struct {
	primary, replica       *smfake.Server
	primarySrv, replicaSrv *httptest.Server
	opts                   Options
	mu                     sync.Mutex
	failovers              []Failover
}

func twoRegions(t *testing.T) *regions {
	t.Helper()
	smfaketest.IsolateEnv(t)
	r := &regions{
		primary: smfake.New(smfake.WithRegion(primaryRegion), smfake.WithReplicaSuffixes()),
		replica: smfake.New(smfake.WithRegion(replicaRegion), smfake.WithReplicaSuffixes()),
	}
	r.primarySrv, r.replicaSrv = httptest.NewServer(r.primary), httptest.NewServer(r.replica)
	t.Cleanup(r.primarySrv.Close)
	t.Cleanup(r.replicaSrv.Close)
	byRegion := map[string]ClientFunc{
		primaryRegion: fakeClients(t, r.primarySrv.URL, primaryRegion),
		replicaRegion: fakeClients(t, r.replicaSrv.URL, replicaRegion),
	}
	r.opts = Options{
		NewBackOff: fastBackOff,
		Clients: func(region string) (API, error) {
			if region == "" {
				region = primaryRegion
			}
			c, ok := byRegion[region]
			if !ok {
				return nil, errors.New("no fake in " + region)
			}
			return c(region)
		},
		OnFailover: func(f Failover) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.failovers = append(r.failovers, f)
		},
		Calls: &Calls{},
	}
	return r
}

// both creates the secret in both regions, each with its own value.
func (r *regions) both(t *testing.T, name string) (primaryARN, replicaARN string) {
	t.Helper()
	primaryARN, _ = create(t, r.primary, name, smfake.Value{String: "from-" + primaryRegion})
	replicaARN, _ = create(t, r.replica, name, smfake.Value{String: "from-" + replicaRegion})
	return primaryARN, replicaARN
}

func failoverPlan(secrets ...plan.Secret) *plan.Plan {
	return &plan.Plan{Version: 1, Dir: "/d", Region: primaryRegion, FailoverRegion: replicaRegion, Secrets: secrets}
}

func TestFailoverWhenPrimaryIsDown(t *testing.T) {
	r := twoRegions(t)
	arn, replicaARN := r.both(t, "app/db")
	r.both(t, "app/api")
	if want := strings.Replace(arn, primaryRegion, replicaRegion, 1); replicaARN != want {
		t.Fatalf("the replica's ARN is %s, want %s", replicaARN, want)
	}
	r.primarySrv.Close() // connection refused from now on

	res, err := Fetch(context.Background(), failoverPlan(
		plan.Secret{File: "by-arn", ID: arn},
		plan.Secret{File: "by-name", ID: "app/api"},
	), r.opts)
	if err != nil {
		t.Fatalf("Fetch with the primary down: %v", err)
	}
	for _, res := range res {
		if string(res.Value) != "from-"+replicaRegion || res.Region != replicaRegion {
			t.Errorf("file %s: %s from region %q, want the replica's value from %s", res.Secret.File, digest(res.Value), res.Region, replicaRegion)
		}
	}
	if n := r.replica.Count(opGet, replicaARN); n != 1 {
		t.Errorf("the replica was asked for %s %d times, want once: an ARN is rewritten to the replica's region", replicaARN, n)
	}
	if len(r.failovers) != 2 {
		t.Fatalf("failovers: %+v, want one per secret", r.failovers)
	}
	for _, f := range r.failovers {
		if f.From != primaryRegion || f.To != replicaRegion || f.Code != CodeConnection || f.Attempts != DefaultPrimaryAttempts {
			t.Errorf("failover %+v: want %s to %s after %d connection errors", f, primaryRegion, replicaRegion, DefaultPrimaryAttempts)
		}
	}
	want := []CallCount{
		{API: opGet, Region: primaryRegion, Result: CodeConnection, Count: 2 * DefaultPrimaryAttempts},
		{API: opGet, Region: replicaRegion, Result: ResultOK, Count: 2},
	}
	if got := r.opts.Calls.Counts(); !equalCounts(got, want) {
		t.Errorf("calls counted: %+v, want %+v", got, want)
	}
}

func equalCounts(a, b []CallCount) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestFailoverOnServerErrorsAndThrottling(t *testing.T) {
	for _, code := range []string{"InternalServiceError", "ThrottlingException"} {
		t.Run(code, func(t *testing.T) {
			r := twoRegions(t)
			r.both(t, "app/db")
			r.primary.InjectFault(smfake.Fault{Operation: opGet, Code: code})
			res, err := Fetch(context.Background(), failoverPlan(plan.Secret{File: "db", ID: "app/db"}), r.opts)
			if err != nil {
				t.Fatal(err)
			}
			if res[0].Region != replicaRegion || string(res[0].Value) != "from-"+replicaRegion {
				t.Errorf("%s in the primary: %s from %q, want the replica's", code, digest(res[0].Value), res[0].Region)
			}
			if n := r.primary.Count(opGet, "app/db"); n != DefaultPrimaryAttempts {
				t.Errorf("the primary was asked %d times, want %d before the failover", n, DefaultPrimaryAttempts)
			}
		})
	}
}

// A permanent answer is the primary's word on the secret: a replica that
// still holds it (say, access revoked in one region only, or a secret
// deleted on purpose) must not overrule it.
func TestNoFailoverOnPermanentAnswers(t *testing.T) {
	for _, code := range []string{"AccessDeniedException", "ResourceNotFoundException", "DecryptionFailure", "InvalidRequestException"} {
		t.Run(code, func(t *testing.T) {
			r := twoRegions(t)
			r.both(t, "app/db")
			r.primary.InjectFault(smfake.Fault{Operation: opGet, Code: code})
			_, err := Fetch(context.Background(), failoverPlan(plan.Secret{File: "db", ID: "app/db"}), r.opts)
			var fe *Error
			if !errors.As(err, &fe) || fe.Failures[0].Code != code || fe.Failures[0].Region != primaryRegion {
				t.Fatalf("Fetch: %v, want a failure with %s from %s", err, code, primaryRegion)
			}
			if n := r.replica.Count("", ""); n != 0 || len(r.failovers) != 0 {
				t.Errorf("the replica got %d calls and %d failovers were reported, want none", n, len(r.failovers))
			}
		})
	}
	t.Run("bad value", func(t *testing.T) {
		r := twoRegions(t)
		create(t, r.primary, "app/db", smfake.Value{String: "not json"})
		create(t, r.replica, "app/db", smfake.Value{String: `{"password":"p"}`})
		_, err := Fetch(context.Background(), failoverPlan(plan.Secret{File: "db", ID: "app/db", Key: "password"}), r.opts)
		var fe *Error
		if !errors.As(err, &fe) || fe.Failures[0].Code != CodeNotJSON {
			t.Fatalf("Fetch: %v, want NotJSON from the primary", err)
		}
		if n := r.replica.Count("", ""); n != 0 {
			t.Errorf("the replica got %d calls, want none", n)
		}
	})
}

// A secret whose ARN names the failover region itself has nowhere else to
// go; and a plan without a failover region never leaves its region.
func TestFailoverNeedsAnotherRegion(t *testing.T) {
	r := twoRegions(t)
	_, replicaARN := r.both(t, "app/db")
	r.replicaSrv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := Fetch(ctx, failoverPlan(plan.Secret{File: "db", ID: replicaARN}), r.opts)
	var fe *Error
	if !errors.As(err, &fe) || fe.Failures[0].Code != CodeConnection {
		t.Fatalf("a secret in the failover region, which is down: %v, want a connection error", err)
	}
	if n := r.primary.Count("", ""); n != 0 {
		t.Errorf("the primary got %d calls for a secret of the other region, want none", n)
	}

	r2 := twoRegions(t)
	r2.both(t, "app/db")
	r2.primarySrv.Close()
	p := failoverPlan(plan.Secret{File: "db", ID: "app/db"})
	p.FailoverRegion = ""
	ctx2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	if _, err := Fetch(ctx2, p, r2.opts); err == nil {
		t.Fatal("no failover region, primary down: Fetch succeeded")
	}
	if n := r2.replica.Count("", ""); n != 0 {
		t.Errorf("no failover region: the replica got %d calls", n)
	}
}

// A schedule that never retries throttling (the refresh sidecar's) moves a
// throttled call to the failover region at once, and, without one, ends it.
func TestFailoverWhenTheScheduleStops(t *testing.T) {
	r := twoRegions(t)
	r.both(t, "app/db")
	r.primary.InjectFault(smfake.Fault{Operation: opGet, Code: "ThrottlingException"})
	r.opts.NewThrottleBackOff = func() backoff.BackOff { return &backoff.StopBackOff{} }
	res, err := Fetch(context.Background(), failoverPlan(plan.Secret{File: "db", ID: "app/db"}), r.opts)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Region != replicaRegion || r.primary.Count(opGet, "") != 1 {
		t.Errorf("served by %q after %d calls to the primary, want %s after 1", res[0].Region, r.primary.Count(opGet, ""), replicaRegion)
	}
	p := failoverPlan(plan.Secret{File: "db", ID: "app/db"})
	p.FailoverRegion = ""
	r.primary.ResetRequests()
	var fe *Error
	if _, err := Fetch(context.Background(), p, r.opts); !errors.As(err, &fe) || fe.Failures[0].Code != "ThrottlingException" || r.primary.Count(opGet, "") != 1 {
		t.Errorf("no failover region: %v after %d calls, want ThrottlingException after 1", err, r.primary.Count(opGet, ""))
	}
}
