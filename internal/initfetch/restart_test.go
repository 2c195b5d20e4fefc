package initfetch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secretfetch/secretfetch/internal/fetch"
	"github.com/secretfetch/secretfetch/internal/plan"
	"github.com/secretfetch/secretfetch/internal/restart"
	"github.com/secretfetch/secretfetch/internal/smfake"
)

// TestExitCode: plan.RestartExitCode is the exit code of a *restart.Error,
// wrapped or not, and of nothing else; init-fetch's failures exit with 1.
func TestExitCode(t *testing.T) {
	re := &restart.Error{Rotations: []restart.Rotation{{ID: "app/a"}}}
	for _, c := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errors.New("reading flags: bad"), 1},
		{&fetch.Error{Total: 1}, 1},
		{context.Canceled, 1},
		{fmt.Errorf("exit status %d", plan.RestartExitCode), 1},
		{re, plan.RestartExitCode},
		{fmt.Errorf("refresh: %w", re), plan.RestartExitCode},
	} {
		if got := ExitCode(c.err); got != c.want {
			t.Errorf("ExitCode(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}

// testClock is a fake clock for the sidecar: Sleep moves it on at once.
// After a day of it, Sleep says the pod stopped, so that a sidecar that
// never restarts ends the test instead of spinning.
type testClock struct{ now, start time.Time }

func newTestClock() *testClock {
	t := time.Date(2026, 12, 1, 4, 0, 0, 0, time.UTC)
	return &testClock{now: t, start: t}
}

func (c *testClock) Now() time.Time { return c.now }

func (c *testClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if c.now.Sub(c.start) > 24*time.Hour {
		return context.Canceled
	}
	c.now = c.now.Add(d)
	return nil
}

// TestRefreshRestart runs init-fetch as the init container, then as the
// sidecar in restart mode: a new version of an env-only secret (which the
// init container's state must name for the sidecar to see it) ends the
// sidecar's run with a *restart.Error after the pod's offset, exit code 85,
// one log line that says why, the termination message, and the marker in
// the volume's root, not in the files' directory.
func TestRefreshRestart(t *testing.T) {
	h := newHarness(t)
	root, envDir := t.TempDir(), t.TempDir()
	h.create(t, "app/tok", smfake.Value{String: "tok-1-" + canary})
	h.create(t, "app/a", smfake.Value{String: "a-1-" + canary})
	p := planJSON(t, &plan.Plan{Version: 1, Dir: root, Subdir: plan.FilesSubdir, EnvDir: envDir, Region: "us-east-1", Secrets: []plan.Secret{
		{File: "tok", ID: "app/tok", Env: "TOKEN", NoFile: true},
		{File: "a", ID: "app/a"},
	}})
	pod := map[string]string{plan.EnvVar: p, plan.EnvPodNamespace: "team-a", plan.EnvPodName: "web-7d9f8b6c5-x2k9q"}
	if err, _ := h.run(t, pod, "--allow-non-tmpfs"); err != nil {
		t.Fatal(err)
	}
	v2, err := h.fk.PutSecretValue("app/tok", smfake.Value{String: "tok-2-" + canary})
	if err != nil {
		t.Fatal(err)
	}

	if err := os.WriteFile(h.termLog, nil, 0o644); err != nil { // as the kubelet makes it
		t.Fatal(err)
	}
	clock := newTestClock()
	var stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = Run(ctx, []string{"--allow-non-tmpfs", "--refresh-interval=1m", "--refresh-restart",
		"--refresh-restart-window=10m", "--refresh-restart-spacing=15m"},
		func(k string) string { return pod[k] }, &stderr, append(h.opts, withClock(clock.Now, clock.Sleep))...)
	var re *restart.Error
	if !errors.As(err, &re) {
		t.Fatalf("Run = %v, want a *restart.Error\n%s", err, stderr.String())
	}
	if code := ExitCode(err); code != plan.RestartExitCode {
		t.Errorf("exit code %d, want %d", code, plan.RestartExitCode)
	}
	offset := restart.Offset("team-a", "web-7d9f8b6c5-x2k9q", 10*time.Minute)
	if re.Offset != offset || re.Waited != offset {
		t.Errorf("restart after %v (offset %v), want the pod's offset %v", re.Waited, re.Offset, offset)
	}
	if strings.Contains(stderr.String(), canary) {
		t.Error("the sidecar's log shows a value")
	}

	// The one line that says why.
	var why []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("a log line is not JSON: %q", line)
		}
		if m["msg"] == RestartLogMessage {
			why = append(why, m)
		}
	}
	if len(why) != 1 {
		t.Fatalf("%d lines %q, want one", len(why), RestartLogMessage)
	}
	rots, _ := json.Marshal(why[0]["rotations"])
	for _, want := range []string{`"id":"app/tok"`, `"envs":["TOKEN"]`, `"versionId":"` + v2 + `"`, `"previousVersionId":"`} {
		if !bytes.Contains(rots, []byte(want)) {
			t.Errorf("the restart line's rotations %s lack %s", rots, want)
		}
	}
	if why[0]["exitCode"] != float64(plan.RestartExitCode) || why[0]["offsetMs"] != float64(offset.Milliseconds()) ||
		why[0]["waitedMs"] != float64(offset.Milliseconds()) {
		t.Errorf("the restart line %v lacks the exit code, the offset or the wait", why[0])
	}

	msg, err := os.ReadFile(h.termLog)
	if err != nil {
		t.Fatal(err)
	}
	if string(msg) != "restarted for rotation: app/tok" {
		t.Errorf("termination message %q", msg)
	}
	if _, err := os.Lstat(filepath.Join(root, restart.MarkerName)); err != nil {
		t.Errorf("no marker in the volume's root: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(root, plan.FilesSubdir, restart.MarkerName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a marker in the files' directory: %v", err)
	}
}

// TestRefreshRestartStopsCleanly: a pod that stops while its restart
// waits ends the sidecar with nil (exit 0), and no termination message.
func TestRefreshRestartStopsCleanly(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	h.secret(t, "app/a")
	args := []string{"--dir", dir, "--secret", "a=app/a", "--region", "us-east-1", "--allow-non-tmpfs"}
	if err, _ := h.run(t, nil, args...); err != nil {
		t.Fatal(err)
	}
	if _, err := h.fk.PutSecretValue("app/a", smfake.Value{String: "new-" + canary}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.termLog, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	pod := map[string]string{plan.EnvPodNamespace: "team-a", plan.EnvPodName: "web-0"}
	if off := restart.Offset("team-a", "web-0", 24*time.Hour); off < 5*time.Minute {
		t.Fatalf("setup: the offset %v is too short to stop the pod while it waits", off)
	}
	ctx, cancel := context.WithCancel(context.Background())
	clock := newTestClock()
	sleeps := 0
	sleep := func(ctx context.Context, d time.Duration) error {
		if sleeps++; sleeps == 3 {
			cancel() // SIGTERM: the pod stops, while the restart waits for its turn
		}
		return clock.Sleep(ctx, d)
	}
	var stderr bytes.Buffer
	err := Run(ctx, append(args, "--refresh-interval=1m", "--refresh-restart", "--refresh-restart-window=24h"),
		func(k string) string { return pod[k] }, &stderr, append(h.opts, withClock(clock.Now, sleep))...)
	if err != nil || ExitCode(err) != 0 {
		t.Fatalf("Run = %v, want nil once the context ended\n%s", err, stderr.String())
	}
	if msg, err := os.ReadFile(h.termLog); err != nil || len(msg) != 0 {
		t.Errorf("termination message %q, %v; want none", msg, err)
	}
	if !strings.Contains(stderr.String(), "the pod restarts at its turn") {
		t.Error("the sidecar did not see the new version")
	}
}
