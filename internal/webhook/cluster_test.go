package webhook

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/secretfetch/secretfetch/internal/features"
	"github.com/secretfetch/secretfetch/internal/mutate"
)

// TestApplyClusterFeatures: the webhook turns restart on change and EnvFiles
// on or off from the API server's version, and its flags can only turn them
// off.
func TestApplyClusterFeatures(t *testing.T) {
	for _, tt := range []struct {
		name        string
		version     string
		err         error
		restartFlag string
		envFlagOff  bool
		wantRestart bool
		wantWhy     string // a part of Restart.Why when off
		wantEnv     bool
		wantEnvWhy  string // NoEnvFilesWhy: the version, or "" for the flag
	}{
		{name: "1.37", version: "v1.37.1", restartFlag: restartAuto, wantRestart: true, wantEnv: true},
		{name: "1.36 on EKS", version: "v1.36.3-eks-4a5b6c7", restartFlag: restartAuto, wantRestart: true, wantEnv: true},
		{name: "1.35", version: "v1.35.4", restartFlag: restartAuto, wantWhy: "reports Kubernetes v1.35.4", wantEnv: true},
		{name: "1.34", version: "v1.34.2", restartFlag: restartAuto, wantWhy: "needs 1.36 or later", wantEnv: false,
			wantEnvWhy: "the API server reports Kubernetes v1.34.2, and EnvFiles (env[].valueFrom.fileKeyRef) needs 1.35 or later"},
		{name: "turned off", version: "v1.37.1", restartFlag: restartOff, envFlagOff: true, wantWhy: "--refresh-restart=false", wantEnv: false},
		{name: "no answer", err: errors.New("connection refused"), restartFlag: restartAuto, wantWhy: "could not read the API server's version", wantEnv: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{RefreshRestart: tt.restartFlag}
			cfg.Mutate.NoEnvFiles = tt.envFlagOff
			applyClusterFeatures(context.Background(), logr.Discard(), &cfg, func(context.Context) (string, error) { return tt.version, tt.err })
			if cfg.Mutate.Restart.Enabled != tt.wantRestart {
				t.Errorf("restart on change = %v, want %v", cfg.Mutate.Restart.Enabled, tt.wantRestart)
			}
			if !tt.wantRestart && !strings.Contains(cfg.Mutate.Restart.Why, tt.wantWhy) {
				t.Errorf("why = %q, want it to say %q", cfg.Mutate.Restart.Why, tt.wantWhy)
			}
			if got := !cfg.Mutate.NoEnvFiles; got != tt.wantEnv {
				t.Errorf("EnvFiles = %v, want %v", got, tt.wantEnv)
			}
			if cfg.Mutate.NoEnvFilesWhy != tt.wantEnvWhy {
				t.Errorf("why EnvFiles is off = %q, want %q", cfg.Mutate.NoEnvFilesWhy, tt.wantEnvWhy)
			}
		})
	}
}

// TestWatchCluster: a control plane upgraded under the running webhook
// turns restart on change on without a restart of the webhook; a version
// that cannot be read turns nothing off.
func TestWatchCluster(t *testing.T) {
	base := Config{RefreshRestart: restartAuto}
	base.Mutate.InitImage = "secretfetch.local/init-fetch:dev"
	versions := make(chan struct {
		v   string
		err error
	})
	version := func(context.Context) (string, error) {
		got := <-versions
		return got.v, got.err
	}
	start := base
	setClusterFeatures(&start, mustCluster(t, "v1.35.4"))
	h, err := mutate.NewHandler(start.Mutate, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		watchCluster(ctx, logr.Discard(), base, start.Mutate, h, version, time.Millisecond)
		close(done)
	}()
	send := func(v string, err error) {
		versions <- struct {
			v   string
			err error
		}{v, err}
	}
	send("v1.35.4", nil)
	if h.Config().Restart.Enabled {
		t.Fatal("restart on change is on for 1.35")
	}
	send("v1.36.1", nil)
	send("", errors.New("connection refused")) // the 1.36 answer is applied before this one is asked for
	if c := h.Config(); !c.Restart.Enabled || c.NoEnvFiles {
		t.Errorf("after the upgrade to 1.36: restart %v, EnvFiles %v; want both on", c.Restart.Enabled, !c.NoEnvFiles)
	}
	send("v1.36.1", nil) // after the failed read: still on
	cancel()
	<-done
	if !h.Config().Restart.Enabled {
		t.Error("a version that could not be read turned restart on change off")
	}
}

func mustCluster(t *testing.T, v string) features.Cluster {
	t.Helper()
	c, err := features.Parse(v)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
