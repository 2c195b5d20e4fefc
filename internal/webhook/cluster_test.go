package webhook

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/go-logr/logr"
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
	}{
		{name: "1.37", version: "v1.37.1", restartFlag: restartAuto, wantRestart: true, wantEnv: true},
		{name: "1.36 on EKS", version: "v1.36.3-eks-4a5b6c7", restartFlag: restartAuto, wantRestart: true, wantEnv: true},
		{name: "1.35", version: "v1.35.4", restartFlag: restartAuto, wantWhy: "reports Kubernetes v1.35.4", wantEnv: true},
		{name: "1.34", version: "v1.34.2", restartFlag: restartAuto, wantWhy: "needs 1.36 or later", wantEnv: false},
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
		})
	}
}
