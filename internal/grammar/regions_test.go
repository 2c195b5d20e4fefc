package grammar

import (
	"testing"
)

func TestParseFailoverAndBatch(t *testing.T) {
	base := func(extra map[string]string) Input {
		a := map[string]string{SecretPrefix + "db": "prod/db"}
		for k, v := range extra {
			a[k] = v
		}
		return Input{Annotations: a, Containers: []string{"app"}}
	}
	for _, tt := range []struct {
		name         string
		ann          map[string]string
		s            Settings
		wantFailover string
		wantBatch    bool
		wantErr      string
	}{
		{name: "none", s: Settings{DefaultRegion: "us-east-1"}},
		{name: "annotations", ann: map[string]string{AnnotationFailoverRegion: "us-west-2", AnnotationBatch: "true"},
			s: Settings{DefaultRegion: "us-east-1"}, wantFailover: "us-west-2", wantBatch: true},
		{name: "the webhook's default", s: Settings{DefaultRegion: "us-east-1", DefaultFailoverRegion: "us-west-2"}, wantFailover: "us-west-2"},
		{name: "the annotation over the default", ann: map[string]string{AnnotationFailoverRegion: "eu-west-1"},
			s: Settings{DefaultRegion: "us-east-1", DefaultFailoverRegion: "us-west-2"}, wantFailover: "eu-west-1"},
		{name: "the default is the pod's region", ann: map[string]string{AnnotationRegion: "us-west-2"},
			s: Settings{DefaultRegion: "us-east-1", DefaultFailoverRegion: "us-west-2"}},
		{name: "batch false", ann: map[string]string{AnnotationBatch: "false"}, s: Settings{DefaultRegion: "us-east-1"}},
		{name: "the pod's own region", ann: map[string]string{AnnotationFailoverRegion: "us-east-1"}, s: Settings{DefaultRegion: "us-east-1"},
			wantErr: `metadata.annotations[secretfetch.io/failover-region]: Invalid value: "us-east-1": this is the pod's region (secretfetch.io/region); name the other region that holds the secrets' replicas`},
		{name: "not a region", ann: map[string]string{AnnotationFailoverRegion: "mars"}, s: Settings{DefaultRegion: "us-east-1"},
			wantErr: `metadata.annotations[secretfetch.io/failover-region]: Invalid value: `},
		{name: "empty", ann: map[string]string{AnnotationFailoverRegion: ""}, s: Settings{DefaultRegion: "us-east-1"},
			wantErr: `metadata.annotations[secretfetch.io/failover-region]: Invalid value: "": the region is empty`},
		{name: "batch yes", ann: map[string]string{AnnotationBatch: "yes"}, s: Settings{DefaultRegion: "us-east-1"},
			wantErr: `metadata.annotations[secretfetch.io/batch]: Invalid value: use "true" to fetch up to 20 secrets a call with BatchGetSecretValue, or "false"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, errs := Parse(base(tt.ann), tt.s, nil)
			if tt.wantErr != "" {
				if len(errs) != 1 || len(errs[0].Error()) < len(tt.wantErr) || errs[0].Error()[:len(tt.wantErr)] != tt.wantErr {
					t.Fatalf("problems %v, want one starting %q", errs, tt.wantErr)
				}
				return
			}
			if len(errs) > 0 {
				t.Fatalf("problems: %v", errs)
			}
			if res.Plan.FailoverRegion != tt.wantFailover || res.Plan.Batch != tt.wantBatch {
				t.Errorf("failover %q batch %v, want %q %v", res.Plan.FailoverRegion, res.Plan.Batch, tt.wantFailover, tt.wantBatch)
			}
		})
	}
}
