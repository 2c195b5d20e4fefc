package features

import "testing"

func TestHas(t *testing.T) {
	for _, tt := range []struct {
		version           string
		envFiles, restart bool
	}{
		{"v1.33.5", false, false},
		{"v1.34.2", false, false},
		{"v1.35.0", true, false},
		{"v1.36.0-eks-1234abc", true, true},
		{"v1.37.1", true, true},
		{"v2.0.0", true, true},
	} {
		c, err := Parse(tt.version)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.version, err)
		}
		if got := c.Has(EnvFiles); got != tt.envFiles {
			t.Errorf("%s: EnvFiles = %v, want %v", tt.version, got, tt.envFiles)
		}
		if got := c.Has(RestartAllContainers); got != tt.restart {
			t.Errorf("%s: RestartAllContainers = %v, want %v", tt.version, got, tt.restart)
		}
	}
	if _, err := Parse("not a version"); err == nil {
		t.Error("Parse accepted a version without numbers")
	}
	c, _ := Parse("v1.35.4")
	if got, want := c.Why(RestartAllContainers), "the API server reports Kubernetes v1.35.4, and restarting every container on a container's exit code (restartPolicyRules: RestartAllContainers) needs 1.36 or later"; got != want {
		t.Errorf("Why = %q, want %q", got, want)
	}
	if (Cluster{}).Has(EnvFiles) {
		t.Error("an unknown cluster has EnvFiles")
	}
}
