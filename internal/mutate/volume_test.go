package mutate

import (
	"fmt"
	"strings"
	"testing"

	"github.com/secretfetch/secretfetch/internal/fetch"
	"github.com/secretfetch/secretfetch/internal/plan"
	"github.com/secretfetch/secretfetch/internal/refresh"
	"github.com/secretfetch/secretfetch/internal/render"
	"github.com/secretfetch/secretfetch/internal/tmpfs"
	"github.com/secretfetch/secretfetch/internal/tmpfs/tmpfstest"
)

// TestVolumeSizeHoldsTwoWorstSets mounts a tmpfs of the size the webhook
// gives the volume, and swaps in, twice, the largest set of files that the
// plan can make: every secret at AWS's 64 KiB, rendered ones rendered from
// the JSON that expands the most, the longest IDs in the refresh state. The
// old and the new set are on the volume together, as during every swap.
func TestVolumeSizeHoldsTwoWorstSets(t *testing.T) {
	longID := func(i int) string {
		return fmt.Sprintf("arn:aws:secretsmanager:us-east-1:111122223333:secret:%s-%06d-AbCdEf", strings.Repeat("p", 1900), i)
	}
	for _, tt := range []struct {
		name     string
		raw, fmt int
		envOnly  int
	}{
		{"eight raw secrets", 8, 0, 0},
		{"six rendered secrets", 0, 6, 0},
		{"a mix, with env-only secrets", 5, 3, 4},
		{"one secret", 1, 0, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := plan.Plan{Version: plan.Version, Dir: plan.DefaultDir}
			var results []fetch.Result
			add := func(s plan.Secret, value []byte) {
				p.Secrets = append(p.Secrets, s)
				results = append(results, fetch.Result{Secret: s, VersionID: strings.Repeat("v", 64), Value: value})
			}
			for i := range tt.raw {
				add(plan.Secret{File: fmt.Sprintf("raw%d", i), ID: longID(i)}, make([]byte, maxSecretSize))
			}
			worstJSON := []byte(`{"k":"` + strings.Repeat("é", (maxSecretSize-10)/2) + `"}`)
			for i := range tt.fmt {
				add(plan.Secret{File: fmt.Sprintf("rendered%d", i), ID: longID(100 + i), Format: plan.FormatYAML}, worstJSON)
			}
			for i := range tt.envOnly {
				add(plan.Secret{File: fmt.Sprintf("env%d", i), ID: longID(200 + i), Env: fmt.Sprintf("E%d", i), NoFile: true}, []byte("x"))
			}
			size := volumeSize(Config{}, &p, false)
			tmpfstest.RunSized(t, size.Value(), func(t *testing.T, dir string) {
				var files []tmpfs.File
				var fileResults []fetch.Result
				for _, r := range results {
					if r.Secret.NoFile {
						continue
					}
					data, _, err := render.FileData(r.Secret, r.Value, false)
					if err != nil {
						t.Fatalf("rendering %s: %v", r.Secret.File, err)
					}
					files = append(files, tmpfs.File{Name: r.Secret.File, Mode: 0o400, Data: data})
					fileResults = append(fileResults, r)
				}
				d, err := tmpfs.OpenDir(dir)
				if err != nil {
					t.Fatal(err)
				}
				defer d.Close()
				sub, err := d.OwnSubdir(plan.FilesSubdir)
				if err != nil {
					t.Fatal(err)
				}
				defer sub.Close()
				for round := range 3 {
					if err := sub.WriteSet(tmpfs.Set{Files: files, State: refresh.NewState(fileResults)}); err != nil {
						t.Fatalf("set %d on a volume of %s: %v", round+1, size.String(), err)
					}
				}
			})
		})
	}
}
