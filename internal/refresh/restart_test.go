//go:build linux

package refresh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/secretfetch/secretfetch/internal/fetch"
	"github.com/secretfetch/secretfetch/internal/plan"
	"github.com/secretfetch/secretfetch/internal/render"
	"github.com/secretfetch/secretfetch/internal/restart"
	"github.com/secretfetch/secretfetch/internal/smfake"
	"github.com/secretfetch/secretfetch/internal/tmpfs"
)

// These tests run the sidecar's loop (Run) on a fake clock: Sleep moves the
// time on at once, so a restart's time is read from the clock, exactly,
// and no test waits for or asserts the wall clock.

// t0 is when each pod's clock starts.
var t0 = time.Date(2026, 12, 1, 4, 0, 0, 0, time.UTC)

// canary is in every value these tests write; it must not reach a log, the
// marker or an error.
const canary = "CANARY-85"

// fakeClock is Options.Now and Options.Sleep.
type fakeClock struct {
	now    time.Time
	sleeps int
	// limit ends Run (as the pod stopping would) at the sleep after it.
	limit int
	// onSleep, if set, runs after each sleep (n counts from 1), before the
	// poll, and can change the fake Secrets Manager or end the context.
	onSleep func(n int)
}

func (c *fakeClock) Now() time.Time { return c.now }

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d <= 0 {
		panic(fmt.Sprintf("Run asked to sleep %v", d))
	}
	c.sleeps++
	if c.limit > 0 && c.sleeps > c.limit {
		return context.Canceled
	}
	c.now = c.now.Add(d)
	if c.onSleep != nil {
		c.onSleep(c.sleeps)
	}
	return ctx.Err()
}

// pod is one pod with restart on change: the volume's root, the layout in
// its files directory as the init container wrote it, and a Refresher in
// restart mode over it.
type pod struct {
	f      *fakeAWS
	plan   *plan.Plan
	ro     *restart.Options // nil: restart off
	root   string
	rootD  *tmpfs.Dir
	layout *tmpfs.Dir
	files  string
	clock  *fakeClock
	log    *bytes.Buffer
	r      *Refresher
}

const (
	podNamespace = "team-a"
	podName      = "web-7d9f8b6c5-x2k9q"
)

// newPod fetches p the way the init container does and starts a sidecar
// over it. ro nil turns restart off.
func (f *fakeAWS) newPod(t *testing.T, p *plan.Plan, ro *restart.Options) *pod {
	t.Helper()
	root := t.TempDir()
	p.Version, p.Dir, p.Region, p.Subdir = plan.Version, root, f.fk.Region(), plan.FilesSubdir
	if slices.ContainsFunc(p.Secrets, func(s plan.Secret) bool { return s.Env != "" }) {
		p.EnvDir = "/var/run/secretfetch-env"
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	rootD, err := tmpfs.OpenDir(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rootD.Close() })
	layout, err := rootD.OwnSubdir(p.Subdir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { layout.Close() })
	if ro != nil {
		ro.Namespace, ro.Name = podNamespace, podName
	}
	pd := &pod{f: f, plan: p, ro: ro, root: root, rootD: rootD, layout: layout, files: filepath.Join(root, p.Subdir),
		clock: &fakeClock{now: t0}, log: &bytes.Buffer{}}
	pd.initFetch(t)
	pd.startSidecar(t)
	return pd
}

// initFetch does what secretfetch-init does, on the way up and after each
// restart: fetch every secret's current version, and write the files (a
// format- file rendered, none for an env-only secret) with the state of
// all of them.
func (pd *pod) initFetch(t *testing.T) {
	t.Helper()
	results, err := fetch.Fetch(context.Background(), pd.plan, fetch.Options{
		Clients:    func(r string) (fetch.API, error) { return pd.f.clients(r) },
		NewBackOff: fastBackOff,
	})
	if err != nil {
		t.Fatal(err)
	}
	var files []tmpfs.File
	for _, r := range results {
		if r.Secret.NoFile {
			continue
		}
		data, _, err := render.FileData(r.Secret, r.Value, r.Binary)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, tmpfs.File{Name: r.Secret.File, Mode: r.Secret.FileMode(), Data: data})
	}
	if err := pd.layout.WriteSet(tmpfs.Set{Files: files, State: NewState(results)}); err != nil {
		t.Fatal(err)
	}
	pd.f.fk.ResetRequests()
}

// startSidecar starts the sidecar afresh, as the kubelet does after a
// restart or a crash: a new Scheduler from the marker, a new Refresher.
func (pd *pod) startSidecar(t *testing.T) {
	t.Helper()
	log := slog.New(slog.NewJSONHandler(pd.log, nil))
	o := Options{Interval: time.Minute, Jitter: -1, Clients: pd.f.clients, NewBackOff: fastBackOff, Log: log,
		Now: pd.clock.Now, Sleep: pd.clock.Sleep}
	if pd.ro != nil {
		ro := *pd.ro
		ro.Log = log
		s, err := restart.Open(pd.rootD, ro, pd.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		o.Restart = s
	}
	r, err := New(pd.plan, pd.layout, o)
	if err != nil {
		t.Fatal(err)
	}
	pd.r = r
}

// run runs the sidecar for at most limit sleeps and returns the restart,
// or nil when Run ended without one.
func (pd *pod) run(t *testing.T, ctx context.Context, limit int) *restart.Error {
	t.Helper()
	pd.clock.sleeps, pd.clock.limit = 0, limit
	err := pd.r.Run(ctx)
	var re *restart.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &re):
		if strings.Contains(err.Error(), canary) {
			t.Error("the restart's error holds a value")
		}
		return re
	default:
		t.Fatalf("Run = %v", err)
		return nil
	}
}

func (pd *pod) read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(pd.files, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (pd *pod) put(t *testing.T, id string, v smfake.Value) string {
	t.Helper()
	version, err := pd.f.fk.PutSecretValue(id, v)
	if err != nil {
		t.Fatal(err)
	}
	return version
}

func (pd *pod) putString(t *testing.T, id, s string) string {
	t.Helper()
	return pd.put(t, id, smfake.Value{String: s})
}

// marker reads the marker, or returns false when there is none.
func (pd *pod) marker(t *testing.T) (restart.Marker, bool) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(pd.root, restart.MarkerName))
	if errors.Is(err, os.ErrNotExist) {
		return restart.Marker{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte(canary)) {
		t.Error("the marker holds a value")
	}
	m, err := restart.DecodeMarker(b)
	if err != nil {
		t.Fatal(err)
	}
	return m, true
}

// noValues fails if the canary is in the log.
func (pd *pod) noValues(t *testing.T) {
	t.Helper()
	if strings.Contains(pd.log.String(), canary) {
		t.Error("a secret value appears in the log")
	}
}

// awsCurrent is the version AWSCURRENT points at.
func awsCurrent(t *testing.T, fk *smfake.Server, id string) string {
	t.Helper()
	info, ok := fk.Secret(id)
	if !ok {
		t.Fatalf("no secret %s", id)
	}
	for v, stages := range info.VersionStages {
		if slices.Contains(stages, "AWSCURRENT") {
			return v
		}
	}
	t.Fatalf("no AWSCURRENT for %s", id)
	return ""
}

var defaultRestart = restart.Options{Window: 10 * time.Minute, Spacing: 15 * time.Minute}

// TestRestartAfterOffset: for each delivery (a file, a rendered file, an
// env-only variable, a file that is also a variable), a new version swaps
// the files at once and restarts the pod exactly at its offset within the
// window after the poll that saw it; the marker records the restart and its
// cause before Run returns, and no value goes anywhere.
func TestRestartAfterOffset(t *testing.T) {
	for _, c := range []struct {
		name   string
		secret plan.Secret
		v1, v2 string
		file   string // the file's content after the swap; "" for none
		envs   []string
	}{
		{name: "file", secret: plan.Secret{File: "db", ID: "db"}, v1: "one-" + canary, v2: "two-" + canary, file: "two-" + canary},
		{name: "rendered file", secret: plan.Secret{File: "app.env", ID: "db", Format: plan.FormatDotenv},
			v1: `{"HOST":"one-` + canary + `"}`, v2: `{"HOST":"two-` + canary + `"}`, file: "HOST='two-" + canary + "'\n"},
		{name: "env only", secret: plan.Secret{File: "db", ID: "db", Env: "DB_PASSWORD", NoFile: true},
			v1: "one-" + canary, v2: "two-" + canary, envs: []string{"DB_PASSWORD"}},
		{name: "file and env", secret: plan.Secret{File: "db", ID: "db", Env: "DB_PASSWORD"},
			v1: "one-" + canary, v2: "two-" + canary, file: "two-" + canary, envs: []string{"DB_PASSWORD"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFake(t, map[string]string{"db": c.v1})
			ro := defaultRestart
			pd := f.newPod(t, &plan.Plan{Secrets: []plan.Secret{c.secret}}, &ro)
			v1 := awsCurrent(t, f.fk, "db")
			v2 := pd.putString(t, "db", c.v2)
			offset := restart.Offset(podNamespace, podName, ro.Window)
			if offset < time.Minute {
				t.Fatalf("setup: the offset %v is shorter than an interval", offset)
			}
			// After the first poll, before the restart: the files are new.
			pd.clock.onSleep = func(n int) {
				if n != 2 {
					return
				}
				if c.file != "" && pd.read(t, c.secret.File) != c.file {
					t.Error("the file was not swapped at once")
				}
				if m, ok := pd.marker(t); !ok || m.Pending == nil || !m.Pending.Since.Equal(t0.Add(time.Minute)) {
					t.Errorf("marker %+v while waiting, want the restart pending since the first poll", m)
				}
			}
			e := pd.run(t, context.Background(), 1000)
			if e == nil {
				t.Fatal("Run ended without a restart")
			}
			seen := t0.Add(time.Minute) // the first poll
			if want := seen.Add(offset); !pd.clock.now.Equal(want) {
				t.Errorf("restarted at t0+%v, want t0+%v (the first poll, then the offset %v)", pd.clock.now.Sub(t0), want.Sub(t0), offset)
			}
			if e.Offset != offset || e.Waited != offset || !e.Since.Equal(seen) {
				t.Errorf("restart %+v, want offset and wait %v since %v", e, offset, seen)
			}
			want := restart.Rotation{ID: "db", Envs: c.envs, PreviousVersionID: v1, VersionID: v2}
			if !c.secret.NoFile {
				want.Files = []string{c.secret.File}
			}
			if len(e.Rotations) != 1 || !equalRotation(e.Rotations[0], want) {
				t.Errorf("rotations %+v, want %+v", e.Rotations, want)
			}
			m, ok := pd.marker(t)
			if !ok || !m.LastRestart.Equal(pd.clock.now) || m.Pending != nil || len(m.Cause) != 1 || !equalRotation(m.Cause[0], want) {
				t.Errorf("marker %+v (found %v), want the restart at the clock's time with its cause", m, ok)
			}
			if _, err := os.Lstat(filepath.Join(pd.files, restart.MarkerName)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the marker is in the files' layout: %v", err)
			}
			if c.secret.NoFile {
				if _, err := os.Lstat(filepath.Join(pd.files, c.secret.File)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("the env-only secret has a file: %v", err)
				}
			}
			pd.noValues(t)
		})
	}
}

func equalRotation(a, b restart.Rotation) bool {
	return a.ID == b.ID && slices.Equal(a.Files, b.Files) && slices.Equal(a.Envs, b.Envs) &&
		a.PreviousVersionID == b.PreviousVersionID && a.VersionID == b.VersionID
}

// TestNoRestartForBadVersion: a new version that would fail the init
// container (its pattern, its key, the env file's rules, SecretBinary for a
// variable, its format) restarts nothing, however long the pod runs, and
// keeps the current files; the failure is logged with its code.
func TestNoRestartForBadVersion(t *testing.T) {
	for _, c := range []struct {
		name   string
		secret plan.Secret
		v1     string
		v2     smfake.Value
		code   string
	}{
		{"pattern", plan.Secret{File: "pass", ID: "s", Key: "password", Pattern: "^p[0-9]+$"},
			`{"password":"p1"}`, smfake.Value{String: `{"password":"bad-` + canary + `"}`}, fetch.CodePatternMismatch},
		{"key", plan.Secret{File: "pass", ID: "s", Key: "password"},
			`{"password":"p1"}`, smfake.Value{String: `{"other":"` + canary + `"}`}, fetch.CodeKeyNotFound},
		{"env quote", plan.Secret{File: "tok", ID: "s", Env: "TOKEN", NoFile: true},
			"t1", smfake.Value{String: "it's-" + canary}, "UnsupportedEnvValue"},
		{"env CRLF", plan.Secret{File: "tok", ID: "s", Env: "TOKEN"},
			"t1", smfake.Value{String: "a\r\nb-" + canary}, "UnsupportedEnvValue"},
		{"env binary", plan.Secret{File: "key", ID: "s", Env: "KEY"},
			"k1", smfake.Value{Binary: []byte("\x00\x01" + canary)}, "BinaryEnvValue"},
		{"format", plan.Secret{File: "app.env", ID: "s", Format: plan.FormatDotenv},
			`{"HOST":"h1"}`, smfake.Value{String: "not json " + canary}, render.CodeNotObject},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFake(t, map[string]string{"s": c.v1})
			ro := defaultRestart
			pd := f.newPod(t, &plan.Plan{Secrets: []plan.Secret{c.secret}}, &ro)
			var before string
			if !c.secret.NoFile {
				before = pd.read(t, c.secret.File)
			}
			pd.put(t, "s", c.v2)
			// Three hours of polls: far past the window and the spacing.
			if e := pd.run(t, context.Background(), 180); e != nil {
				t.Fatalf("restarted for a version that would fail the init container: %+v", e)
			}
			if !c.secret.NoFile && pd.read(t, c.secret.File) != before {
				t.Error("a bad version replaced the file")
			}
			if m, ok := pd.marker(t); ok {
				t.Errorf("a marker was written: %+v", m)
			}
			if !strings.Contains(pd.log.String(), `"code":"`+c.code+`"`) {
				t.Errorf("the failure is not logged with the code %s", c.code)
			}
			pd.noValues(t)
		})
	}
}

// TestRestartSpacingFlapping: a secret that changes at every poll restarts
// the pod once per spacing, no more: the marker of the last restart, read
// by each new sidecar, holds the next one back until the spacing has
// passed since the last. The first restart already counts the one before
// it, a minute before the test starts.
func TestRestartSpacingFlapping(t *testing.T) {
	f := newFake(t, map[string]string{"db": "v0-" + canary})
	ro := restart.Options{Window: 0, Spacing: 15 * time.Minute}
	pd := f.newPod(t, &plan.Plan{Secrets: []plan.Secret{{File: "db", ID: "db", Env: "DB"}}}, &ro)
	// The restart that started this pod, a minute ago.
	b, _, err := restart.EncodeMarker(restart.Marker{LastRestart: t0.Add(-time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if err := pd.rootD.WriteAll([]tmpfs.File{{Name: restart.MarkerName, Mode: 0o400, Data: b}}); err != nil {
		t.Fatal(err)
	}
	pd.startSidecar(t)

	n := 0
	pd.clock.onSleep = func(int) { // a new version before every poll
		n++
		pd.putString(t, "db", fmt.Sprintf("v%d-%s", n, canary))
	}
	var restarts []time.Time
	end := t0.Add(2 * time.Hour)
	for pd.clock.now.Before(end) {
		e := pd.run(t, context.Background(), int(end.Sub(pd.clock.now)/time.Minute)+1)
		if e == nil {
			break
		}
		restarts = append(restarts, pd.clock.now)
		// The kubelet runs the init container again, then the sidecar.
		pd.initFetch(t)
		pd.startSidecar(t)
	}
	if len(restarts) == 0 || !restarts[0].Equal(t0.Add(14*time.Minute)) {
		t.Fatalf("restarts at %v, want the first at t0+14m (15m after the one before)", since(restarts))
	}
	for i := 1; i < len(restarts); i++ {
		if gap := restarts[i].Sub(restarts[i-1]); gap < ro.Spacing {
			t.Errorf("restarts at %v: %v between two, less than the spacing %v", since(restarts), gap, ro.Spacing)
		}
	}
	// Two hours from t0+14m, once per 15m: 8 restarts, not one per poll.
	if len(restarts) != 8 {
		t.Errorf("%d restarts in two hours of a secret changing every minute, want 8: %v", len(restarts), since(restarts))
	}
	pd.noValues(t)
}

func since(ts []time.Time) []time.Duration {
	out := make([]time.Duration, len(ts))
	for i, ts := range ts {
		out[i] = ts.Sub(t0)
	}
	return out
}

// TestRestartPollsEnvOnly: an env-only secret is polled with restart on, and
// its new version is a rotation (no file appears, and it is fetched once,
// not at every poll); with restart off it is never polled.
func TestRestartPollsEnvOnly(t *testing.T) {
	for _, restartOn := range []bool{false, true} {
		t.Run(fmt.Sprintf("restart=%v", restartOn), func(t *testing.T) {
			f := newFake(t, map[string]string{"tok": "t1-" + canary, "a": "a1-" + canary})
			var ro *restart.Options
			if restartOn {
				ro = &restart.Options{Window: 10 * time.Minute, Spacing: 15 * time.Minute}
			}
			pd := f.newPod(t, &plan.Plan{Secrets: []plan.Secret{{File: "tok", ID: "tok", Env: "TOKEN", NoFile: true}, {File: "a", ID: "a"}}}, ro)
			poll := func() Report {
				rep, err := pd.r.Poll(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				return rep
			}
			poll()
			describes := f.fk.Count(opDescribe, "tok")
			if want := map[bool]int{false: 0, true: 1}[restartOn]; describes != want {
				t.Fatalf("%d DescribeSecret calls for the env-only secret, want %d", describes, want)
			}
			v2 := pd.putString(t, "tok", "t2-"+canary)
			f.fk.ResetRequests()
			rep := poll()
			if !restartOn {
				if len(rep.Rotations) != 0 || f.fk.Count("", "tok") != 0 {
					t.Errorf("restart off: rotations %+v, %d calls for the env-only secret", rep.Rotations, f.fk.Count("", "tok"))
				}
				return
			}
			if len(rep.Rotations) != 1 || rep.Rotations[0].VersionID != v2 || !slices.Equal(rep.Rotations[0].Envs, []string{"TOKEN"}) ||
				len(rep.Rotations[0].Files) != 0 || len(rep.Changes) != 0 {
				t.Fatalf("report %+v, want one rotation of TOKEN to %s and no file changed", rep, v2)
			}
			if _, err := os.Lstat(filepath.Join(pd.files, "tok")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the env-only secret has a file: %v", err)
			}
			f.fk.ResetRequests()
			if rep := poll(); len(rep.Rotations) != 0 || f.fk.Count(opGet, "tok") != 0 {
				t.Errorf("the poll after: rotations %+v, %d GetSecretValue for tok; want none: it was checked", rep.Rotations, f.fk.Count(opGet, "tok"))
			}
			// The state still says what the env file holds.
			st, err := pd.layout.ReadState()
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(st, []byte(v2)) || !bytes.Contains(st, []byte(`"file":"tok"`)) {
				t.Errorf("state %s, want tok at the version the env file holds", st)
			}
			pd.noValues(t)
		})
	}
}

// TestRestartPinnedNeverPolled: a pinned version-id, a file or an env-only
// variable, is never asked about, and its new versions restart nothing.
func TestRestartPinnedNeverPolled(t *testing.T) {
	f := newFake(t, map[string]string{"pin-file": "p1-" + canary, "pin-env": "e1-" + canary, "a": "a1-" + canary})
	pinFile, pinEnv := awsCurrent(t, f.fk, "pin-file"), awsCurrent(t, f.fk, "pin-env")
	ro := defaultRestart
	pd := f.newPod(t, &plan.Plan{Secrets: []plan.Secret{
		{File: "pinned", ID: "pin-file", VersionID: pinFile},
		{File: "pinned-env", ID: "pin-env", VersionID: pinEnv, Env: "PINNED", NoFile: true},
		{File: "a", ID: "a"},
	}}, &ro)
	pd.putString(t, "pin-file", "p2-"+canary)
	pd.putString(t, "pin-env", "e2-"+canary)
	if e := pd.run(t, context.Background(), 120); e != nil {
		t.Fatalf("restarted for a pinned secret: %+v", e)
	}
	for _, id := range []string{"pin-file", "pin-env"} {
		if n := f.fk.Count("", id); n != 0 {
			t.Errorf("%d requests for the pinned %s, want none", n, id)
		}
	}
	if f.fk.Count(opDescribe, "a") == 0 {
		t.Error("the unpinned secret was not polled")
	}
	if pd.read(t, "pinned") != "p1-"+canary {
		t.Error("the pinned file changed")
	}
}

// TestRestartHeldWhileASecretFails: a restart that is due waits while any
// polled secret fails (the init container would fail on it, and the app
// would not come back), and happens at the first poll that finds every
// secret good.
func TestRestartHeldWhileASecretFails(t *testing.T) {
	f := newFake(t, map[string]string{"a": "a1-" + canary, "b": "b1"})
	ro := restart.Options{Window: 0, Spacing: time.Minute}
	pd := f.newPod(t, &plan.Plan{Secrets: []plan.Secret{{File: "a", ID: "a"}, {File: "b", ID: "b", Pattern: "^b[0-9]+$"}}}, &ro)
	pd.putString(t, "a", "a2-"+canary)
	pd.putString(t, "b", "bad-"+canary)
	pd.clock.onSleep = func(n int) {
		if n == 4 {
			pd.putString(t, "b", "b3")
		}
	}
	e := pd.run(t, context.Background(), 100)
	if e == nil {
		t.Fatal("no restart once every secret was good again")
	}
	if want := t0.Add(4 * time.Minute); !pd.clock.now.Equal(want) {
		t.Errorf("restarted at t0+%v, want t0+4m: held at the polls of t0+1m to t0+3m", pd.clock.now.Sub(t0))
	}
	if n := strings.Count(pd.log.String(), "holding the restart"); n != 3 {
		t.Errorf("%d lines say the restart is held, want 3", n)
	}
	var ids []string
	for _, r := range e.Rotations {
		ids = append(ids, r.ID)
	}
	if !slices.Equal(ids, []string{"a", "b"}) {
		t.Errorf("rotations of %v, want a and b", ids)
	}
	pd.noValues(t)
}

// TestRestartPendingSurvives: when the pod stops while a restart waits, Run
// ends cleanly with no restart; a sidecar that crashed while it waited finds
// the pending restart in the marker and restarts at the same time, though
// the files already hold the new version.
func TestRestartPendingSurvives(t *testing.T) {
	f := newFake(t, map[string]string{"db": "v1-" + canary})
	ro := defaultRestart
	pd := f.newPod(t, &plan.Plan{Secrets: []plan.Secret{{File: "db", ID: "db"}}}, &ro)
	pd.putString(t, "db", "v2-"+canary)
	ctx, cancel := context.WithCancel(context.Background())
	pd.clock.onSleep = func(n int) {
		if n == 3 {
			cancel() // the pod stops, or the sidecar dies
		}
	}
	if e := pd.run(t, ctx, 1000); e != nil {
		t.Fatalf("restarted after the context ended: %+v", e)
	}
	m, ok := pd.marker(t)
	if !ok || m.Pending == nil || !m.LastRestart.IsZero() {
		t.Fatalf("marker %+v, want the restart pending and none done", m)
	}
	if pd.read(t, "db") != "v2-"+canary {
		t.Fatal("the file was not swapped")
	}

	pd.clock.onSleep = nil
	pd.startSidecar(t)
	e := pd.run(t, context.Background(), 1000)
	if e == nil {
		t.Fatal("the new sidecar forgot the pending restart")
	}
	if want := t0.Add(time.Minute + restart.Offset(podNamespace, podName, ro.Window)); !pd.clock.now.Equal(want) {
		t.Errorf("restarted at t0+%v, want t0+%v", pd.clock.now.Sub(t0), want.Sub(t0))
	}
}

// TestRestartNotForUnknownVersion: without the state of the current set,
// the version the app started with is not known; the files are brought up
// to date as always, and nothing restarts for it.
func TestRestartNotForUnknownVersion(t *testing.T) {
	f := newFake(t, map[string]string{"db": "v1-" + canary})
	ro := restart.Options{Window: 0, Spacing: time.Minute}
	pd := f.newPod(t, &plan.Plan{Secrets: []plan.Secret{{File: "db", ID: "db"}}}, &ro)
	if err := pd.layout.WriteSet(tmpfs.Set{Keep: []string{"db"}}); err != nil { // no state
		t.Fatal(err)
	}
	if e := pd.run(t, context.Background(), 30); e != nil {
		t.Fatalf("restarted for an unknown version: %+v", e)
	}
	if !strings.Contains(pd.log.String(), "the version the app started with is not known") {
		t.Error("the log does not say why")
	}
}
