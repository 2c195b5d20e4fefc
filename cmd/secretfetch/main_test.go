package main

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestExitCodes builds the command and runs it as a pipeline would: exit 0
// with the rendered manifest, 1 with the problems on stderr, 1 for a bad
// command line.
func TestExitCodes(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("skipping: the go command is not available: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "secretfetch")
	if out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	testdata := filepath.Join("..", "..", "internal", "offline", "testdata")
	flags := []string{"--init-image", "registry.example/init-fetch:1.0", "--default-region", "us-east-1"}
	for _, tt := range []struct {
		name   string
		args   []string
		code   int
		stdout string // a part of it
		stderr string // a part of it
	}{
		{"mutated", append([]string{"render", "-f", filepath.Join(testdata, "workloads", "in.yaml")}, flags...), 0, "secretfetch.io/status: injected", ""},
		{"denied", append([]string{"render", "-f", filepath.Join(testdata, "denied", "in.yaml")}, flags...), 1, "name: ok",
			"metadata.annotations[secretfetch.io/secrets-db]: Invalid value: this is not a secretfetch.io annotation"},
		{"no file", []string{"render"}, 1, "", "secretfetch: no manifest: give -f FILE"},
		{"no command", nil, 1, "", "the command is: secretfetch render -f FILE"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(bin, tt.args...)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tt.code, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tt.stdout, stdout.String())
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderr, stderr.String())
			}
		})
	}
}
