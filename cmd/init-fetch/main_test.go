package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secretfetch/secretfetch/internal/plan"
	"github.com/secretfetch/secretfetch/internal/smfake"
	"github.com/secretfetch/secretfetch/internal/tmpfs/tmpfstest"
)

func goTool(t *testing.T) string {
	t.Helper()
	if goroot := os.Getenv("GOROOT"); goroot != "" {
		if p := filepath.Join(goroot, "bin", "go"); fileExists(p) {
			return p
		}
	}
	p, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("skipping: the go command is not available: %v", err)
	}
	return p
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// TestNoKubernetesDependencies keeps the init binary small: it ships in
// every pod that uses secretfetch, so it must not link client-go,
// apimachinery or controller-runtime.
func TestNoKubernetesDependencies(t *testing.T) {
	out, err := exec.Command(goTool(t), "list", "-deps", ".").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list -deps: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps printed only %d packages", len(deps))
	}
	var bad []string
	for _, d := range deps {
		if strings.HasPrefix(d, "k8s.io/") || strings.HasPrefix(d, "sigs.k8s.io/") {
			bad = append(bad, d)
		}
	}
	if len(bad) > 0 {
		t.Errorf("init-fetch links Kubernetes packages: %s", strings.Join(bad, ", "))
	}
}

// TestBinary builds init-fetch and runs it the way a pod does: plan in
// $SECRETFETCH_PLAN, endpoint and credentials in the AWS environment
// variables, so the SDK's own configuration chain is what finds the fake.
func TestBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "init-fetch")
	build := exec.Command(goTool(t), "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	fk := smfake.New()
	srv := httptest.NewServer(fk)
	defer srv.Close()
	const canary = "CANARY-5b4a39"
	values := map[string][]byte{
		"db":  []byte(`{"user":"app","password":"pw-` + canary + `"}`),
		"bin": {0x00, 0xff, 0x01, '\n'},
	}
	if _, _, err := fk.CreateSecret("app/db", smfake.Value{String: string(values["db"])}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := fk.CreateSecret("app/bin", smfake.Value{Binary: values["bin"]}); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + t.TempDir(),
		"AWS_ENDPOINT_URL_SECRETS_MANAGER=" + srv.URL,
		"AWS_ACCESS_KEY_ID=" + smfake.DefaultAccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + smfake.DefaultSecretAccessKey,
		"AWS_REGION=" + fk.Region(),
		"AWS_EC2_METADATA_DISABLED=true",
	}
	secrets := []plan.Secret{
		{File: "password", ID: "app/db", Key: "password", Mode: 0o440},
		{File: "blob", ID: "app/bin"},
	}
	run := func(t *testing.T, dir string, extra ...string) (exitCode int, stderr string) {
		t.Helper()
		p, err := plan.Encode(&plan.Plan{Version: 1, Dir: dir, Secrets: secrets})
		if err != nil {
			t.Fatal(err)
		}
		// Bounded, so that a binary that never exits fails the test.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, extra...)
		cmd.Env = append(env, plan.EnvVar+"="+p)
		var errBuf bytes.Buffer
		cmd.Stderr = &errBuf
		err = cmd.Run()
		if strings.Contains(errBuf.String(), canary) {
			t.Error("the binary's logs show a secret value")
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), errBuf.String()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, errBuf.String()
	}
	check := func(t *testing.T, dir string) {
		t.Helper()
		want := map[string]struct {
			mode fs.FileMode
			data []byte
		}{
			"password": {0o440, []byte("pw-" + canary)},
			"blob":     {0o400, values["bin"]},
		}
		for name, w := range want {
			// The layout of both modes: <name> -> ..data/<name>.
			if target, err := os.Readlink(filepath.Join(dir, name)); err != nil || target != "..data/"+name {
				t.Errorf("%s: link to %q (%v), want ..data/%s", name, target, err, name)
			}
			fi, err := os.Stat(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode() != w.mode {
				t.Errorf("%s: mode %v, want %v", name, fi.Mode(), w.mode)
			}
			if got, _ := os.ReadFile(filepath.Join(dir, name)); !bytes.Equal(got, w.data) {
				t.Errorf("%s: %d bytes differ from the %d expected", name, len(got), len(w.data))
			}
		}
	}

	t.Run("success", func(t *testing.T) {
		dir := t.TempDir()
		termLog := filepath.Join(t.TempDir(), "termination-log")
		code, stderr := run(t, dir, "--allow-non-tmpfs", "--termination-log", termLog)
		if code != 0 {
			t.Fatalf("exit code %d, stderr:\n%s", code, stderr)
		}
		check(t, dir)
		if strings.Count(stderr, `"msg":"fetched secret"`) != 2 {
			t.Errorf("stderr lacks the two 'fetched secret' lines:\n%s", stderr)
		}
		if _, err := os.Stat(termLog); !errors.Is(err, fs.ErrNotExist) {
			t.Error("a termination message was written on success")
		}
	})

	t.Run("failure", func(t *testing.T) {
		dir := t.TempDir()
		termLog := filepath.Join(t.TempDir(), "termination-log")
		fk.InjectFault(smfake.Fault{Operation: "GetSecretValue", SecretID: "app/bin", Code: "AccessDeniedException", Count: 1})
		code, stderr := run(t, dir, "--allow-non-tmpfs", "--termination-log", termLog)
		if code != 1 {
			t.Fatalf("exit code %d, want 1; stderr:\n%s", code, stderr)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("the failed run left %d files", len(entries))
		}
		msg, err := os.ReadFile(termLog)
		if err != nil {
			t.Fatal(err)
		}
		want := "secretfetch: 1 of 2 secrets failed, no files written:\napp/bin (file blob): AccessDeniedException after 1 attempt(s)"
		if string(msg) != want {
			t.Errorf("termination log =\n%s\nwant\n%s", msg, want)
		}
	})

	t.Run("refuses a disk directory", func(t *testing.T) {
		dir := t.TempDir()
		code, stderr := run(t, dir)
		if code != 1 || !strings.Contains(stderr, "not on a memory-backed file system") {
			t.Errorf("exit code %d, stderr:\n%s", code, stderr)
		}
	})

	// The refresh sidecar in restart mode exits with plan.RestartExitCode,
	// and writes why, once it has seen a new version; a window of 0s and
	// no restart before mean at once, at the first poll.
	t.Run("restart on change", func(t *testing.T) {
		dir := t.TempDir()
		if code, stderr := run(t, dir, "--allow-non-tmpfs"); code != 0 {
			t.Fatalf("init: exit code %d, stderr:\n%s", code, stderr)
		}
		if _, err := fk.PutSecretValue("app/db", smfake.Value{String: `{"user":"app","password":"pw2-` + canary + `"}`}); err != nil {
			t.Fatal(err)
		}
		termLog := filepath.Join(t.TempDir(), "termination-log")
		code, stderr := run(t, dir, "--allow-non-tmpfs", "--termination-log", termLog, "--refresh-interval=1s",
			"--refresh-restart", "--refresh-restart-window=0s", "--refresh-restart-spacing=1m")
		if code != plan.RestartExitCode {
			t.Fatalf("exit code %d, want %d; stderr:\n%s", code, plan.RestartExitCode, stderr)
		}
		if msg, err := os.ReadFile(termLog); err != nil || string(msg) != "restarted for rotation: app/db" {
			t.Errorf("termination message %q, %v", msg, err)
		}
		if !strings.Contains(stderr, `"msg":"restarting the pod for rotation"`) {
			t.Errorf("stderr lacks the restart line:\n%s", stderr)
		}
	})

	t.Run("on a real tmpfs", func(t *testing.T) {
		tmpfstest.Run(t, func(t *testing.T, dir string) {
			code, stderr := run(t, dir)
			if code != 0 {
				t.Fatalf("exit code %d, stderr:\n%s", code, stderr)
			}
			check(t, dir)
		})
	})
}
