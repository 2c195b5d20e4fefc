package offline

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// TestRenderGolden runs `secretfetch render` on every case under
// testdata/<case>/: in.yaml is the manifest, args (when present) the
// flags, one a line; out.yaml is what it prints, err.txt what it prints on
// stderr (absent when nothing), and exit the code it ends with (0 or 1).
func TestRenderGolden(t *testing.T) {
	ins, err := filepath.Glob("testdata/*/in.yaml")
	if err != nil || len(ins) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	for _, in := range ins {
		dir := filepath.Dir(in)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			args := []string{"render", "-f", in}
			if b, err := os.ReadFile(filepath.Join(dir, "args")); err == nil {
				for _, a := range strings.Split(strings.TrimSpace(string(b)), "\n") {
					if a = strings.TrimSpace(a); a != "" {
						args = append(args, a)
					}
				}
			}
			var stdout, stderr bytes.Buffer
			err := Run(args, strings.NewReader(""), &stdout, &stderr)
			code := "0\n"
			if err != nil {
				code = "1\n"
				if !errors.Is(err, ErrDenied) {
					stderr.WriteString("secretfetch: " + err.Error() + "\n")
				}
			}
			golden(t, filepath.Join(dir, "out.yaml"), stdout.Bytes())
			golden(t, filepath.Join(dir, "err.txt"), stderr.Bytes())
			golden(t, filepath.Join(dir, "exit"), []byte(code))
		})
	}
}

// golden compares got with file, absent meaning empty, or rewrites it.
func golden(t *testing.T, file string, got []byte) {
	t.Helper()
	if *update {
		if len(got) == 0 {
			if err := os.Remove(file); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
			return
		}
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s (-want +got):\n%s", file, diff)
	}
}

// TestSharedFlags: render takes the webhook's flags with the webhook's
// defaults, so that a pipeline's check and the cluster agree.
func TestSharedFlags(t *testing.T) {
	o, err := parseRender([]string{"-f", "x.yaml"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if o.wh.Mutate.MinRefreshInterval.String() != "1m0s" || o.wh.RefreshRestart != "auto" || o.wh.Mutate.Restart.Window.String() != "10m0s" {
		t.Errorf("defaults differ from the webhook's: %+v", o.wh)
	}
	if _, err := o.renderer(); err == nil || !strings.Contains(err.Error(), "--init-image") {
		t.Errorf("renderer without --init-image = %v, want the webhook's error naming --init-image", err)
	}
}
