//go:build linux

package refresh

// These tests drive the real SDK client over loopback against smfake, the
// project's fake of Secrets Manager, so that DescribeSecret, version IDs,
// stages, faults and the request log are the fake's, not a stub's.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/cenkalti/backoff/v4"

	"github.com/secretfetch/secretfetch/internal/fetch"
	"github.com/secretfetch/secretfetch/internal/plan"
	"github.com/secretfetch/secretfetch/internal/render"
	"github.com/secretfetch/secretfetch/internal/smfake"
	"github.com/secretfetch/secretfetch/internal/smfake/smfaketest"
	"github.com/secretfetch/secretfetch/internal/tmpfs"
)

const (
	opDescribe = "DescribeSecret"
	opGet      = "GetSecretValue"
)

// env is one pod's worth: the fake, a directory that init-fetch has filled,
// and a Refresher over it.
type env struct {
	fk   *smfake.Server
	dir  string
	d    *tmpfs.Dir
	plan *plan.Plan
	log  *bytes.Buffer
	r    *Refresher
}

func fastBackOff() backoff.BackOff {
	return backoff.WithMaxRetries(backoff.NewConstantBackOff(time.Millisecond), 3)
}

// fakeAWS is smfake on loopback with SDK clients that reach it.
type fakeAWS struct {
	fk      *smfake.Server
	clients ClientFunc
}

// newFake seeds the fake with secrets (name -> value).
func newFake(t *testing.T, secrets map[string]string) *fakeAWS {
	t.Helper()
	return newFakeBehind(t, secrets, func(h http.Handler) http.Handler { return h })
}

// newFakeBehind is newFake with the fake's handler wrapped by front, which
// may answer some requests itself.
func newFakeBehind(t *testing.T, secrets map[string]string, front func(http.Handler) http.Handler) *fakeAWS {
	t.Helper()
	smfaketest.IsolateEnv(t)
	fk := smfake.New()
	srv := httptest.NewServer(front(fk))
	t.Cleanup(srv.Close)
	for name, v := range secrets {
		if _, _, err := fk.CreateSecret(name, smfake.Value{String: v}); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.LoadDefaultConfig(context.Background(),
		config.WithRegion(fk.Region()),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(smfake.DefaultAccessKeyID, smfake.DefaultSecretAccessKey, "")),
	)
	if err != nil {
		t.Fatal(err)
	}
	return &fakeAWS{fk: fk, clients: SDKClients(cfg, func(o *secretsmanager.Options) { o.BaseEndpoint = aws.String(srv.URL) })}
}

// env runs the first fetch of p into a fresh directory the way init-fetch
// does (a format- file rendered, no file for an env-only secret), and
// returns a Refresher over the result.
func (f *fakeAWS) env(t *testing.T, p *plan.Plan, o Options) *env {
	t.Helper()
	dir := t.TempDir()
	p.Version, p.Dir, p.Region = plan.Version, dir, f.fk.Region()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	d, err := tmpfs.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	results, err := fetch.Fetch(context.Background(), p, fetch.Options{
		Clients:    func(r string) (fetch.API, error) { return f.clients(r) },
		NewBackOff: fastBackOff,
	})
	if err != nil {
		t.Fatal(err)
	}
	var files []tmpfs.File
	var written []fetch.Result
	for _, r := range results {
		if r.Secret.NoFile {
			continue
		}
		data, _, err := render.FileData(r.Secret, r.Value, r.Binary)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, tmpfs.File{Name: r.Secret.File, Mode: r.Secret.FileMode(), Data: data})
		written = append(written, r)
	}
	if err := d.WriteSet(tmpfs.Set{Files: files, State: NewState(written)}); err != nil {
		t.Fatal(err)
	}
	f.fk.ResetRequests()

	log := &bytes.Buffer{}
	o.Interval, o.Clients, o.NewBackOff = time.Minute, f.clients, fastBackOff
	o.Log = slog.New(slog.NewJSONHandler(log, nil))
	r, err := New(p, d, o)
	if err != nil {
		t.Fatal(err)
	}
	return &env{fk: f.fk, dir: dir, d: d, plan: p, log: log, r: r}
}

func newEnv(t *testing.T, secrets map[string]string, p *plan.Plan, o Options) *env {
	t.Helper()
	return newFake(t, secrets).env(t, p, o)
}

func (e *env) poll(t *testing.T) Report {
	t.Helper()
	rep, err := e.r.Poll(context.Background())
	if err != nil {
		t.Fatalf("Poll: %v", err)
	}
	return rep
}

// read reads a visible file.
func (e *env) read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (e *env) put(t *testing.T, id, value string, stages ...string) string {
	t.Helper()
	v, err := e.fk.PutSecretValue(id, smfake.Value{String: value}, stages...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// calls counts the requests of an operation for a secret since the last
// reset, and resets.
func (e *env) calls(op, id string) int { return e.fk.Count(op, id) }

// noValues fails if any of values appears in the log.
func (e *env) noValues(t *testing.T, values ...string) {
	t.Helper()
	for _, v := range values {
		if strings.Contains(e.log.String(), v) {
			t.Error("a secret value appears in the log")
		}
	}
}

func TestPollUnchangedAndChanged(t *testing.T) {
	e := newEnv(t, map[string]string{"db": `{"user":"u1","password":"p1"}`, "api": "k1"},
		&plan.Plan{Secrets: []plan.Secret{{File: "user", ID: "db", Key: "user"}, {File: "pass", ID: "db", Key: "password"}, {File: "api", ID: "api"}}}, Options{})

	rep := e.poll(t)
	if rep.Unchanged != 2 || rep.Changed != 0 || len(rep.Failures) != 0 {
		t.Fatalf("unchanged poll: %+v", rep)
	}
	// One DescribeSecret per distinct secret, no GetSecretValue at all.
	if d, g := e.calls(opDescribe, "db"), e.calls(opGet, ""); d != 1 || g != 0 {
		t.Errorf("unchanged poll: %d DescribeSecret for db, %d GetSecretValue; want 1 and 0", d, g)
	}
	e.fk.ResetRequests()

	v2 := e.put(t, "db", `{"user":"u2","password":"p2"}`)
	rep = e.poll(t)
	if rep.Changed != 1 || rep.Unchanged != 1 || len(rep.Changes) != 2 {
		t.Fatalf("changed poll: %+v", rep)
	}
	for _, c := range rep.Changes {
		if c.VersionID != v2 || c.PrevVersionID == "" || c.PrevVersionID == v2 || c.ID != "db" {
			t.Errorf("change %+v, want db from a previous version to %s", c, v2)
		}
	}
	if got := e.read(t, "user") + "/" + e.read(t, "pass"); got != "u2/p2" {
		t.Errorf("after the swap the files hold %d bytes that are not the new pair", len(got))
	}
	if e.read(t, "api") != "k1" {
		t.Error("an unchanged file changed")
	}
	// One DescribeSecret each, and one GetSecretValue (by VersionId) for
	// the two files of db.
	if d, g := e.calls(opDescribe, ""), e.calls(opGet, "db"); d != 2 || g != 1 {
		t.Errorf("changed poll: %d DescribeSecret, %d GetSecretValue for db; want 2 and 1", d, g)
	}
	for _, r := range e.fk.Requests() {
		if r.Operation == opGet && r.SecretID != "db" {
			t.Errorf("GetSecretValue for %s, which did not change", r.SecretID)
		}
	}
	// One log line per swap, naming files and versions.
	if n := strings.Count(e.log.String(), `"msg":"swapped secrets"`); n != 1 {
		t.Errorf("%d swap lines in the log, want 1", n)
	}
	if !strings.Contains(e.log.String(), v2) {
		t.Error("the swap line does not name the new version")
	}
	e.noValues(t, "u2", "p2", "k1")

	// And the next poll sees the new version as current.
	e.fk.ResetRequests()
	if rep := e.poll(t); rep.Unchanged != 2 || e.calls(opGet, "") != 0 {
		t.Errorf("poll after the swap: %+v, %d GetSecretValue", rep, e.calls(opGet, ""))
	}
}

func TestPollPinnedIsNeverPolled(t *testing.T) {
	f := newFake(t, map[string]string{"a": "a1", "pin": "x1"})
	info, _ := f.fk.Secret("pin")
	var v1 string
	for v := range info.VersionStages {
		v1 = v
	}
	e := f.env(t, &plan.Plan{Secrets: []plan.Secret{{File: "pinned", ID: "pin", VersionID: v1}, {File: "cur", ID: "a"}}}, Options{})
	e.put(t, "a", "a2")
	e.put(t, "pin", "x2")
	rep := e.poll(t)
	if rep.Pinned != 1 || rep.Changed != 1 {
		t.Fatalf("report %+v, want one pinned and one changed", rep)
	}
	if e.read(t, "pinned") != "x1" || e.read(t, "cur") != "a2" {
		t.Error("the pinned file changed, or the current one did not")
	}
	if n := e.calls("", "pin"); n != 0 {
		t.Errorf("%d requests for the pinned secret, want none", n)
	}
}

func TestPollStageMoved(t *testing.T) {
	f := newFake(t, map[string]string{"a": "a1"})
	if _, err := f.fk.PutSecretValue("a", smfake.Value{String: "a2"}); err != nil { // a1 is now AWSPREVIOUS
		t.Fatal(err)
	}
	e := f.env(t, &plan.Plan{Secrets: []plan.Secret{{File: "prev", ID: "a", VersionStage: "AWSPREVIOUS"}}}, Options{})
	if e.read(t, "prev") != "a1" {
		t.Fatal("setup: prev is not a1")
	}
	if rep := e.poll(t); rep.Unchanged != 1 {
		t.Fatalf("poll before the stage moved: %+v", rep)
	}
	e.put(t, "a", "a3") // AWSPREVIOUS moves to a2
	if rep := e.poll(t); rep.Changed != 1 {
		t.Fatalf("poll after the stage moved: %+v", rep)
	}
	if e.read(t, "prev") != "a2" {
		t.Error("the file did not follow AWSPREVIOUS")
	}
}

func TestPollDescribeDeniedFallsBack(t *testing.T) {
	e := newEnv(t, map[string]string{"a": "val-A1"}, &plan.Plan{Secrets: []plan.Secret{{File: "a", ID: "a"}}}, Options{})
	e.fk.InjectFault(smfake.Fault{Operation: opDescribe, Code: "AccessDeniedException"})

	if rep := e.poll(t); rep.Unchanged != 1 || len(rep.Failures) != 0 {
		t.Fatalf("unchanged poll with DescribeSecret denied: %+v", rep)
	}
	if d, g := e.calls(opDescribe, "a"), e.calls(opGet, "a"); d != 1 || g != 1 {
		t.Errorf("first poll: %d DescribeSecret, %d GetSecretValue; want 1 denied and 1 fallback", d, g)
	}
	e.fk.ResetRequests()
	e.put(t, "a", "val-A2")
	if rep := e.poll(t); rep.Changed != 1 {
		t.Fatalf("changed poll with DescribeSecret denied: %+v", rep)
	}
	if e.read(t, "a") != "val-A2" {
		t.Error("the fallback did not swap in the new value")
	}
	// DescribeSecret is not asked again once denied; one GetSecretValue
	// both compares and fetches.
	if d, g := e.calls(opDescribe, "a"), e.calls(opGet, "a"); d != 0 || g != 1 {
		t.Errorf("second poll: %d DescribeSecret, %d GetSecretValue; want 0 and 1", d, g)
	}
	if n := strings.Count(e.log.String(), `"missingPermission":"secretsmanager:DescribeSecret"`); n != 1 {
		t.Errorf("the missing permission is logged %d times, want once", n)
	}
	e.noValues(t, "val-A1", "val-A2")
}

func TestPollFailuresKeepFiles(t *testing.T) {
	e := newEnv(t, map[string]string{"db": `{"password":"p1"}`, "b": "val-B1"},
		&plan.Plan{Secrets: []plan.Secret{{File: "pass", ID: "db", Key: "password", Pattern: "p[0-9]+"}, {File: "b", ID: "b"}}}, Options{})
	v2 := e.put(t, "db", `{"password":"p2"}`)
	e.put(t, "b", "val-B2")

	steps := []struct {
		name  string
		setup func()
		code  string
	}{
		{"throttled", func() { e.fk.InjectFault(smfake.Fault{Operation: opGet, SecretID: "db", Code: "ThrottlingException"}) }, "ThrottlingException"},
		{"access denied on GetSecretValue", func() {
			e.fk.InjectFault(smfake.Fault{Operation: opGet, SecretID: "db", Code: "AccessDeniedException"})
		}, "AccessDeniedException"},
		{"DescribeSecret fails", func() {
			e.fk.InjectFault(smfake.Fault{Operation: opDescribe, SecretID: "db", Code: "InternalServiceError"})
		}, "InternalServiceError"},
	}
	for i, s := range steps {
		e.fk.ClearFaults()
		s.setup()
		rep, err := e.r.Poll(context.Background())
		if err != nil {
			t.Fatalf("%s: Poll: %v", s.name, err)
		}
		if len(rep.Failures) != 1 || rep.Failures[0].Code != s.code || rep.Failures[0].ID != "db" {
			t.Fatalf("%s: failures %+v, want db with %s", s.name, rep.Failures, s.code)
		}
		if e.read(t, "pass") != "p1" {
			t.Fatalf("%s: the file of the failed secret changed", s.name)
		}
		if i == 0 && (rep.Changed != 1 || e.read(t, "b") != "val-B2") {
			t.Errorf("%s: the other secret did not switch: %+v", s.name, rep)
		}
		if !strings.Contains(e.log.String(), `"code":"`+s.code+`"`) {
			t.Errorf("%s: the failure is not logged with its code", s.name)
		}
		if v := rep.Failures[0].VersionID; v == "" || v == v2 || !strings.Contains(e.log.String(), `"versionId":"`+v+`"`) {
			t.Errorf("%s: the failure is not logged with the version the files hold (%q)", s.name, v)
		}
	}
	// A new version that fails its pattern, then one that lacks the key.
	e.fk.ClearFaults()
	e.put(t, "db", `{"password":"not-matching"}`)
	if rep := e.poll(t); len(rep.Failures) != 1 || rep.Failures[0].Code != fetch.CodePatternMismatch {
		t.Fatalf("pattern: %+v", rep)
	}
	e.put(t, "db", `{"other":"x"}`)
	if rep := e.poll(t); len(rep.Failures) != 1 || rep.Failures[0].Code != fetch.CodeKeyNotFound {
		t.Fatalf("key: %+v", rep)
	}
	if e.read(t, "pass") != "p1" {
		t.Fatal("a bad new version replaced the file")
	}
	// The fault clears: the next good version is swapped in.
	e.put(t, "db", `{"password":"p9"}`)
	if rep := e.poll(t); rep.Changed != 1 || e.read(t, "pass") != "p9" {
		t.Fatalf("recovery: %+v", rep)
	}
	e.noValues(t, "p1", "p2", "p9", "not-matching", "val-B2")
}

// TestPollLogsBoundedErrors: an endpoint's error message is quoted in the
// sidecar's log, cut to fetch.MaxErrorText, whatever its size: the sidecar
// polls for the pod's whole life, so one broken answer per poll must not
// fill the node's log.
func TestPollLogsBoundedErrors(t *testing.T) {
	e := newEnv(t, map[string]string{"db": "v1"}, &plan.Plan{Secrets: []plan.Secret{{File: "db", ID: "db"}}}, Options{})
	e.put(t, "db", "v2")
	huge := strings.Repeat("x", 300<<10) // under fetch.MaxResponseBytes, so it is read
	e.fk.InjectFault(smfake.Fault{Operation: opGet, SecretID: "db", Code: "AccessDeniedException", Message: huge})
	if rep := e.poll(t); len(rep.Failures) != 1 {
		t.Fatalf("failures %+v, want one", rep.Failures)
	}
	e.fk.ClearFaults()
	e.fk.InjectFault(smfake.Fault{Operation: opDescribe, SecretID: "db", Code: "InternalServiceError", Message: huge})
	if rep := e.poll(t); len(rep.Failures) != 1 {
		t.Fatalf("failures %+v, want one", rep.Failures)
	}
	for i, line := range strings.Split(strings.TrimSpace(e.log.String()), "\n") {
		if len(line) > 2*fetch.MaxErrorText+1024 {
			t.Errorf("log line %d is %d bytes, want at most about %d", i, len(line), fetch.MaxErrorText)
		}
	}
	if !strings.Contains(e.log.String(), "xxxx") {
		t.Error("the error's message is not in the log at all")
	}
}

// TestPollStalledAttemptsRetried: an answer that stalls is given up after
// AttemptTimeout and asked again, for DescribeSecret as for GetSecretValue,
// instead of using up the whole poll.
func TestPollStalledAttemptsRetried(t *testing.T) {
	e := newEnv(t, map[string]string{"db": "v1"}, &plan.Plan{Secrets: []plan.Secret{{File: "db", ID: "db"}}},
		Options{AttemptTimeout: 100 * time.Millisecond, PollTimeout: time.Minute})
	e.put(t, "db", "v2")
	e.fk.InjectFault(smfake.Fault{Operation: opDescribe, SecretID: "db", Latency: 30 * time.Second, Count: 1})
	e.fk.InjectFault(smfake.Fault{Operation: opGet, SecretID: "db", Latency: 30 * time.Second, Count: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rep, err := e.r.Poll(ctx)
	if err != nil {
		t.Fatalf("Poll: %v", err)
	}
	if rep.Changed != 1 || len(rep.Failures) != 0 || e.read(t, "db") != "v2" {
		t.Fatalf("report %+v; want the new version swapped in after the stalled attempts", rep)
	}
	if n := e.calls(opDescribe, "db"); n != 2 {
		t.Errorf("%d DescribeSecret calls, want 2 (one stalled, one answered)", n)
	}
}

func TestPollWithoutStateFetchesOnce(t *testing.T) {
	e := newEnv(t, map[string]string{"a": "a1"}, &plan.Plan{Secrets: []plan.Secret{{File: "a", ID: "a"}}}, Options{})
	// A set written without state (by hand, or an older init-fetch).
	if err := e.d.WriteSet(tmpfs.Set{Keep: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	if rep := e.poll(t); rep.Changed != 1 {
		t.Fatalf("poll without state: %+v", rep)
	}
	e.fk.ResetRequests()
	if rep := e.poll(t); rep.Unchanged != 1 || e.calls(opGet, "") != 0 {
		t.Fatalf("poll with the state written: %+v", rep)
	}
}

func TestNotify(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, r.Method+" "+r.Header.Get("Content-Type")+" "+string(b))
		mu.Unlock()
	}))
	t.Cleanup(app.Close)

	e := newEnv(t, map[string]string{"a": "a1", "b": "val-B1"},
		&plan.Plan{Secrets: []plan.Secret{{File: "a", ID: "a"}, {File: "b", ID: "b"}}}, Options{NotifyURL: app.URL + "/reload"})
	e.poll(t) // unchanged: no POST
	v2 := e.put(t, "a", "secret-a2")
	e.poll(t)
	mu.Lock()
	defer mu.Unlock()
	if len(bodies) != 1 {
		t.Fatalf("%d POSTs, want one per swap", len(bodies))
	}
	if !strings.HasPrefix(bodies[0], "POST application/json ") {
		t.Errorf("request %.40q, want a JSON POST", bodies[0])
	}
	var n Notification
	if err := json.Unmarshal([]byte(strings.SplitN(bodies[0], " ", 3)[2]), &n); err != nil {
		t.Fatal(err)
	}
	if len(n.Files) != 1 || n.Files[0].File != "a" || n.Files[0].VersionID != v2 || n.Files[0].PrevVersionID == "" || n.Dir != e.dir {
		t.Errorf("notification %+v, want file a at %s", n, v2)
	}
	if strings.Contains(bodies[0], "secret-a2") || strings.Contains(bodies[0], "val-B1") {
		t.Error("the notification holds a value")
	}
}

// TestNotifyFollowsNoRedirect: the URL was checked to be loopback, so the
// POST goes there and nowhere else. An answer that redirects (the app, or
// whatever listens on the port) must not send the sidecar to another host.
func TestNotifyFollowsNoRedirect(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { elsewhere.Add(1) }))
	t.Cleanup(other.Close)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/collect", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(app.Close)

	e := newEnv(t, map[string]string{"a": "a1"}, &plan.Plan{Secrets: []plan.Secret{{File: "a", ID: "a"}}},
		Options{NotifyURL: app.URL + "/reload"})
	e.put(t, "a", "secret-a2")
	e.poll(t)
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("the redirect was followed: %d request(s) reached %s", n, other.URL)
	}
	if !strings.Contains(e.log.String(), "307") {
		t.Errorf("the redirect is not logged as a failed notification:\n%s", e.log.String())
	}
}

func TestNewRefusesBadNotifyURL(t *testing.T) {
	_, err := New(&plan.Plan{}, nil, Options{Interval: time.Minute, Clients: func(string) (API, error) { return nil, nil }, NotifyURL: "http://example.com:80/"})
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("New with a non-loopback notify URL = %v", err)
	}
}

func TestWaitJitter(t *testing.T) {
	r := &Refresher{opts: Options{Interval: 10 * time.Second, Jitter: 0.1}}
	seen := map[time.Duration]bool{}
	for range 100 {
		w := r.wait()
		if w < 9*time.Second || w > 11*time.Second {
			t.Fatalf("wait %v outside 10s ±10%%", w)
		}
		seen[w] = true
	}
	if len(seen) < 10 {
		t.Errorf("only %d distinct waits in 100: no jitter", len(seen))
	}
}

// countingBackOff counts how often its schedule is asked for a wait.
type countingBackOff struct{ n *int }

func (c countingBackOff) NextBackOff() time.Duration { *c.n++; return time.Millisecond }
func (c countingBackOff) Reset()                     {}

// TestPollThrottleSchedule: after a throttling answer to DescribeSecret or
// GetSecretValue, the wait comes from the throttle schedule, as in the
// first fetch; after another retryable answer, from the other one.
func TestPollThrottleSchedule(t *testing.T) {
	var throttleWaits int
	e := newEnv(t, map[string]string{"a": "val-A1"}, &plan.Plan{Secrets: []plan.Secret{{File: "a", ID: "a"}}},
		Options{NewThrottleBackOff: func() backoff.BackOff { return countingBackOff{&throttleWaits} }})
	e.fk.InjectFault(smfake.Fault{Operation: opDescribe, Code: "ThrottlingException", Count: 1})
	e.fk.InjectFault(smfake.Fault{Operation: opDescribe, Code: "InternalServiceError", Count: 1})
	if rep := e.poll(t); rep.Unchanged != 1 {
		t.Fatalf("poll: %+v", rep)
	}
	if throttleWaits != 1 {
		t.Errorf("%d waits from the throttle schedule after one throttled DescribeSecret, want 1", throttleWaits)
	}
	e.put(t, "a", "val-A2")
	e.fk.InjectFault(smfake.Fault{Operation: opGet, Code: "ThrottlingException", Count: 2})
	if rep := e.poll(t); rep.Changed != 1 {
		t.Fatalf("poll: %+v", rep)
	}
	if throttleWaits != 3 {
		t.Errorf("%d waits from the throttle schedule, want 3 (one DescribeSecret, two GetSecretValue)", throttleWaits)
	}
}
