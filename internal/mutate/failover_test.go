package mutate

import (
	"encoding/json"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/secretfetch/secretfetch/internal/grammar"
	"github.com/secretfetch/secretfetch/internal/plan"
)

// The webhook's default failover region reaches the plan, and its failover
// endpoint the init container, through the handler.
func TestHandlerDefaultFailoverRegion(t *testing.T) {
	cfg := testConfig
	cfg.DefaultFailoverRegion, cfg.FailoverEndpoint, cfg.FailoverSTSEndpoint = "us-west-2", "http://replica.example:4566", "http://sts.replica.example:4566"
	for _, tc := range []struct {
		name, region, wantFailover string
	}{
		{"default", "", "us-west-2"},
		{"a pod in the failover region", "us-west-2", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod, _ := readPod(t, "testdata/one-container/in.yaml")
			if tc.region != "" {
				pod.Annotations[grammar.AnnotationRegion] = tc.region
			}
			raw, err := json.Marshal(pod)
			if err != nil {
				t.Fatal(err)
			}
			resp := serve(t, newWebhook(t, cfg, nil), review(t, raw, admissionv1.Create, "default", false))
			if !resp.Allowed {
				t.Fatalf("denied: %v", resp.Result)
			}
			out := mustDecodePod(t, applyPatch(t, raw, resp))
			init := out.Spec.InitContainers[0]
			var p *plan.Plan
			endpoint, stsEndpoint := "", ""
			for _, e := range init.Env {
				switch e.Name {
				case plan.EnvVar:
					var err error
					if p, err = plan.Decode([]byte(e.Value)); err != nil {
						t.Fatal(err)
					}
				case EnvFailoverEndpoint:
					endpoint = e.Value
				case EnvFailoverSTSEndpoint:
					stsEndpoint = e.Value
				}
			}
			if p == nil || p.FailoverRegion != tc.wantFailover {
				t.Fatalf("plan %+v, want failover region %q", p, tc.wantFailover)
			}
			if wantEndpoint := map[bool]string{true: cfg.FailoverEndpoint}[tc.wantFailover != ""]; endpoint != wantEndpoint {
				t.Errorf("%s = %q, want %q", EnvFailoverEndpoint, endpoint, wantEndpoint)
			}
			if wantSTS := map[bool]string{true: cfg.FailoverSTSEndpoint}[tc.wantFailover != ""]; stsEndpoint != wantSTS {
				t.Errorf("%s = %q, want %q", EnvFailoverSTSEndpoint, stsEndpoint, wantSTS)
			}
		})
	}
}

func TestConfigValidateFailover(t *testing.T) {
	cfg := testConfig
	cfg.DefaultFailoverRegion = "mars"
	if err := cfg.Validate(); err == nil {
		t.Error("--default-failover-region=mars was accepted")
	}
	cfg.DefaultFailoverRegion, cfg.FailoverEndpoint = "us-west-2", "ftp://x"
	if err := cfg.Validate(); err == nil {
		t.Error("--failover-secretsmanager-endpoint=ftp://x was accepted")
	}
}
