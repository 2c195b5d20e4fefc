package main

import (
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secretfetch/secretfetch/internal/webhook/webhooktest"
)

func TestRunFlagErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"no init image", []string{"--metrics-bind-address=0", "--health-probe-bind-address=0"}, "--init-image"},
		{"bad size", []string{"--init-image=i", "--volume-size-limit=big"}, "volume-size-limit"},
		{"bad endpoint", []string{"--init-image=i", "--secretsmanager-endpoint=sm.example", "--metrics-bind-address=0", "--health-probe-bind-address=0"}, "--secretsmanager-endpoint"},
		{"bad region", []string{"--init-image=i", "--default-region=Mars", "--metrics-bind-address=0", "--health-probe-bind-address=0"}, "--default-region"},
		{"unknown flag", []string{"--init-img=i"}, "init-img"},
		{"bad min refresh interval", []string{"--init-image=i", "--min-refresh-interval=48h", "--metrics-bind-address=0", "--health-probe-bind-address=0"}, "--min-refresh-interval"},
		{"bad log level", []string{"--init-image=i", "--log-level=loud"}, "--log-level"},
		{"bad log format", []string{"--init-image=i", "--log-format=console"}, "--log-format"},
		{"no connections", []string{"--init-image=i", "--max-connections=0", "--metrics-bind-address=0", "--health-probe-bind-address=0"}, "--max-connections"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := run(tt.args)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run(%q) = %v, want an error naming %s", tt.args, err, tt.want)
			}
		})
	}
	if err := run([]string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("run(-h) = %v, want flag.ErrHelp", err)
	}
}

// TestRunSIGTERM runs the binary's run with real flags and stops it the way
// the kubelet does, with SIGTERM.
func TestRunSIGTERM(t *testing.T) {
	dir := t.TempDir()
	webhooktest.WriteCert(t, dir)
	port, health := webhooktest.FreePort(t), webhooktest.FreePort(t)
	done := make(chan error, 1)
	go func() {
		done <- run([]string{"--cert-dir=" + dir, fmt.Sprintf("--port=%d", port), "--init-image=secretfetch.local/init-fetch:dev",
			"--metrics-bind-address=0", fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", health),
			"--shutdown-delay=0", "--log-level=error"})
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", health))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("run returned before it was ready: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("never ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// run's signal.NotifyContext is in place once it serves, so the signal
	// stops run, not the test binary.
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after SIGTERM")
	}
}
