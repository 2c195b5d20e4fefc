//go:build linux

package restart

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secretfetch/secretfetch/internal/tmpfs"
)

// t0 is the tests' "now"; no test reads the wall clock.
var t0 = time.Date(2026, 12, 1, 4, 0, 0, 0, time.UTC)

func TestOffsetDeterministic(t *testing.T) {
	const w = 10 * time.Minute
	a := Offset("team-a", "web-7d9f8b6c5-x2k9q", w)
	for range 3 {
		if got := Offset("team-a", "web-7d9f8b6c5-x2k9q", w); got != a {
			t.Fatalf("Offset changed from %v to %v for the same pod", a, got)
		}
	}
	if a < 0 || a >= w {
		t.Errorf("Offset = %v, want within [0, %v)", a, w)
	}
	// The namespace counts: the same name in another namespace is another pod.
	if Offset("team-b", "web-7d9f8b6c5-x2k9q", w) == a {
		t.Error("two namespaces give a pod of one name the same offset")
	}
	for _, w := range []time.Duration{0, -time.Second} {
		if got := Offset("team-a", "web-0", w); got != 0 {
			t.Errorf("Offset with window %v = %v, want 0", w, got)
		}
	}
}

// TestOffsetUniform: the offsets of 1,000 pods spread evenly over the
// window, for the names a Deployment gives its pods (a random suffix) and
// the names of a StatefulSet (web-0, web-1, ...): each tenth of the window
// gets 10% of the pods, within 4 points. For a uniform spread the count of a
// tenth has a standard deviation of 0.95 points, so 4 points is more than
// four of them; a chi-square over the ten tenths must stay under 27.9
// (p = 0.001 with 9 degrees of freedom).
func TestOffsetUniform(t *testing.T) {
	const n = 1000
	const alphabet = "bcdfghjklmnpqrstvwxz2456789" // the suffixes of generated pod names
	rng := rand.New(rand.NewPCG(18, 85))
	deployment := make([]string, n)
	for i := range deployment {
		var b strings.Builder
		b.WriteString("web-7d9f8b6c5-")
		for range 5 {
			b.WriteByte(alphabet[rng.IntN(len(alphabet))])
		}
		deployment[i] = b.String()
	}
	statefulSet := make([]string, n)
	for i := range statefulSet {
		statefulSet[i] = fmt.Sprintf("db-%d", i)
	}
	for _, w := range []time.Duration{10 * time.Minute, time.Minute, time.Hour, 24 * time.Hour} {
		for kind, names := range map[string][]string{"deployment": deployment, "statefulset": statefulSet} {
			t.Run(fmt.Sprintf("%s/%v", kind, w), func(t *testing.T) {
				var tenths [10]int
				for _, name := range names {
					off := Offset("team-a", name, w)
					if off < 0 || off >= w {
						t.Fatalf("offset %v outside [0, %v)", off, w)
					}
					tenths[off*10/w]++
				}
				chi := 0.0
				for i, c := range tenths {
					if c < n/10-40 || c > n/10+40 {
						t.Errorf("tenth %d of the window holds %d of %d pods, want 10%% within 4 points", i, c, n)
					}
					d := float64(c - n/10)
					chi += d * d / (n / 10)
				}
				if chi > 27.9 {
					t.Errorf("chi-square %.1f over the tenths %v, want under 27.9", chi, tenths)
				}
			})
		}
	}
}

func openRoot(t *testing.T) (string, *tmpfs.Dir) {
	t.Helper()
	dir := t.TempDir()
	d, err := tmpfs.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return dir, d
}

func writeMarker(t *testing.T, dir string, m Marker) {
	t.Helper()
	b, _, err := EncodeMarker(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, MarkerName), b, 0o400); err != nil {
		t.Fatal(err)
	}
}

func readMarker(t *testing.T, dir string) Marker {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, MarkerName))
	if err != nil {
		t.Fatal(err)
	}
	m, err := DecodeMarker(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var rotA = Rotation{ID: "prod/db", Files: []string{"db"}, Envs: []string{"DB_PASSWORD"},
	PreviousVersionID: "EXAMPLE1-90ab-cdef-fedc-ba987EXAMPLE", VersionID: "EXAMPLE2-90ab-cdef-fedc-ba987EXAMPLE"}

// TestDue: a restart is due at the pod's offset after the first rotation was
// seen, and never sooner than the spacing after the last restart.
func TestDue(t *testing.T) {
	const window, spacing = 10 * time.Minute, 15 * time.Minute
	offset := Offset("ns", "pod", window)
	for _, c := range []struct {
		name    string
		marker  *Marker
		seen    time.Time
		want    time.Time
		pending bool
	}{
		{name: "nothing seen"},
		{name: "no restart before", seen: t0, want: t0.Add(offset), pending: true},
		{name: "last restart long ago", marker: &Marker{LastRestart: t0.Add(-time.Hour)}, seen: t0, want: t0.Add(offset), pending: true},
		{name: "last restart a minute ago", marker: &Marker{LastRestart: t0.Add(-time.Minute)}, seen: t0,
			want: t0.Add(spacing - time.Minute), pending: true},
		{name: "last restart in the future counts as now", marker: &Marker{LastRestart: t0.Add(48 * time.Hour)}, seen: t0,
			want: t0.Add(spacing), pending: true},
		{name: "pending from before, kept", marker: &Marker{Pending: &Pending{Since: t0.Add(-2 * time.Minute), Rotations: []Rotation{rotA}}},
			want: t0.Add(-2 * time.Minute).Add(offset), pending: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir, root := openRoot(t)
			if c.marker != nil {
				writeMarker(t, dir, *c.marker)
			}
			s, err := Open(root, Options{Window: window, Spacing: spacing, Namespace: "ns", Name: "pod"}, t0)
			if err != nil {
				t.Fatal(err)
			}
			if !c.seen.IsZero() {
				if err := s.Observe(c.seen, []Rotation{rotA}); err != nil {
					t.Fatal(err)
				}
			}
			due, ok := s.Due()
			if ok != c.pending || !due.Equal(c.want) {
				t.Errorf("Due = %v, %v; want %v, %v", due, ok, c.want, c.pending)
			}
		})
	}
}

// TestObserveAndRestart: rotations of one request merge (the version the app
// holds stays, the new one moves on), the pending restart is in the marker
// as soon as it is seen, and Restart writes the restart and its cause before
// it returns the error to exit with.
func TestObserveAndRestart(t *testing.T) {
	dir, root := openRoot(t)
	s, err := Open(root, Options{Window: 0, Spacing: time.Minute}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Observe(t0, []Rotation{rotA}); err != nil {
		t.Fatal(err)
	}
	if m := readMarker(t, dir); m.Pending == nil || !m.Pending.Since.Equal(t0) || len(m.Pending.Rotations) != 1 || !m.LastRestart.IsZero() {
		t.Fatalf("marker after Observe = %+v, want the rotation pending since %v", m, t0)
	}
	later := rotA
	later.PreviousVersionID, later.VersionID = rotA.VersionID, "EXAMPLE3-90ab-cdef-fedc-ba987EXAMPLE"
	other := Rotation{ID: "prod/api", Files: []string{"api"}, PreviousVersionID: "EXAMPLE1-0000-cdef-fedc-ba987EXAMPLE", VersionID: "EXAMPLE2-0000-cdef-fedc-ba987EXAMPLE"}
	if err := s.Observe(t0.Add(time.Minute), []Rotation{later, other}); err != nil {
		t.Fatal(err)
	}
	p := s.Marker().Pending
	if !p.Since.Equal(t0) || len(p.Rotations) != 2 || p.Rotations[0].PreviousVersionID != rotA.PreviousVersionID ||
		p.Rotations[0].VersionID != later.VersionID || p.Rotations[1].ID != "prod/api" {
		t.Fatalf("pending %+v, want prod/db from its first version to its latest, and prod/api", p)
	}

	at := t0.Add(2 * time.Minute)
	e, err := s.Restart(at)
	if err != nil {
		t.Fatal(err)
	}
	if e.Waited != 2*time.Minute || !e.Since.Equal(t0) || len(e.Rotations) != 2 || e.IDs(8) != "prod/db, prod/api" {
		t.Errorf("Restart = %+v", e)
	}
	if got := e.Error(); got != "restarting the pod for a rotation of prod/db, prod/api" {
		t.Errorf("Error() = %q", got)
	}
	m := readMarker(t, dir)
	if !m.LastRestart.Equal(at) || m.Pending != nil || len(m.Cause) != 2 || m.Cause[0].VersionID != later.VersionID {
		t.Errorf("marker after Restart = %+v, want the restart at %v with its cause and nothing pending", m, at)
	}
	fi, err := os.Lstat(filepath.Join(dir, MarkerName))
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != markerMode {
		t.Errorf("marker file %v, %v; want a regular file with mode %v", fi.Mode(), err, os.FileMode(markerMode))
	}
	if _, ok := s.Due(); ok {
		t.Error("a restart is still pending after Restart")
	}
	if _, err := s.Restart(at); err == nil {
		t.Error("Restart with nothing pending succeeded")
	}
}

// TestRestartNeedsTheMarker: a restart that cannot be written down does not
// happen (without it the next sidecar could not keep the spacing), and stays
// pending.
func TestRestartNeedsTheMarker(t *testing.T) {
	dir, root := openRoot(t)
	s, err := Open(root, Options{Spacing: time.Minute}, t0)
	if err != nil {
		t.Fatal(err)
	}
	// A directory where the marker goes: WriteAll refuses to replace it.
	if err := os.Mkdir(filepath.Join(dir, MarkerName), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := s.Observe(t0, []Rotation{rotA}); err == nil {
		t.Error("Observe reported the marker written")
	}
	if e, err := s.Restart(t0); err == nil || e != nil {
		t.Fatalf("Restart = %v, %v; want an error and no restart", e, err)
	}
	if _, ok := s.Due(); !ok {
		t.Error("the restart is no longer pending")
	}
}

// TestOpenUnreadableMarker: a marker that can't be read is logged and left
// aside; the sidecar starts without it, and writes a good one.
func TestOpenUnreadableMarker(t *testing.T) {
	for name, write := range map[string]func(path string) error{
		"not JSON":      func(p string) error { return os.WriteFile(p, []byte("{"), 0o400) },
		"wrong version": func(p string) error { return os.WriteFile(p, []byte(`{"version":9}`), 0o400) },
		"too large":     func(p string) error { return os.WriteFile(p, bytes.Repeat([]byte(" "), MaxMarker+1), 0o400) },
		"a symlink":     func(p string) error { return os.Symlink("/etc/hostname", p) },
	} {
		t.Run(name, func(t *testing.T) {
			dir, root := openRoot(t)
			if err := write(filepath.Join(dir, MarkerName)); err != nil {
				t.Fatal(err)
			}
			var log bytes.Buffer
			s, err := Open(root, Options{Spacing: time.Minute, Log: slog.New(slog.NewJSONHandler(&log, nil))}, t0)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := s.Due(); ok || !s.Marker().LastRestart.IsZero() {
				t.Errorf("Open with an unreadable marker remembers %+v", s.Marker())
			}
			if !strings.Contains(log.String(), "cannot read the restart marker") {
				t.Errorf("no warning in the log:\n%s", log.String())
			}
			if name == "a symlink" {
				return // WriteAll refuses to replace a symlink too; the restart waits
			}
			if err := s.Observe(t0, []Rotation{rotA}); err != nil {
				t.Fatal(err)
			}
			if m := readMarker(t, dir); m.Pending == nil {
				t.Errorf("marker %+v, want the pending restart", m)
			}
		})
	}
}

// TestMarkerBounded: however many rotations, the marker stays under
// MaxMarker: the past restart's cause goes first, then the last pending
// rotations, and they are counted.
func TestMarkerBounded(t *testing.T) {
	long := strings.Repeat("x", 2000)
	var many []Rotation
	for i := range 40 {
		many = append(many, Rotation{ID: fmt.Sprintf("arn:aws:secretsmanager:us-east-1:111122223333:secret:%d-%s", i, long),
			Files: []string{fmt.Sprintf("f%d", i)}, PreviousVersionID: rotA.PreviousVersionID, VersionID: rotA.VersionID})
	}
	b, m, err := EncodeMarker(Marker{LastRestart: t0, Cause: many, Pending: &Pending{Since: t0, Rotations: many}})
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > MaxMarker {
		t.Fatalf("marker of %d bytes, want at most %d", len(b), MaxMarker)
	}
	if len(m.Cause) != 0 || m.CauseOmitted != 40 || m.Pending == nil || len(m.Pending.Rotations) == 0 ||
		len(m.Pending.Rotations)+m.Pending.Omitted != 40 {
		t.Errorf("encoded marker keeps %d of the cause (%d omitted) and %d pending (%d omitted)",
			len(m.Cause), m.CauseOmitted, len(m.Pending.Rotations), m.Pending.Omitted)
	}
	back, err := DecodeMarker(b)
	if err != nil {
		t.Fatal(err)
	}
	if back.Pending == nil || back.Pending.Omitted != m.Pending.Omitted {
		t.Errorf("decoded %+v", back.Pending)
	}
	e := &Error{Rotations: m.Pending.Rotations, Omitted: m.Pending.Omitted}
	if got := e.IDs(2); !strings.HasSuffix(got, fmt.Sprintf(" and %d more", 38)) {
		t.Errorf("IDs(2) ends %q", got[max(0, len(got)-20):])
	}
}

// TestMarkerHoldsNoValue: the marker's fields are times, counts, IDs, names
// and version IDs; its JSON has no other field.
func TestMarkerHoldsNoValue(t *testing.T) {
	b, _, err := EncodeMarker(Marker{LastRestart: t0, Cause: []Rotation{rotA}, Pending: &Pending{Since: t0, Rotations: []Rotation{rotA}}})
	if err != nil {
		t.Fatal(err)
	}
	var generic map[string]any
	if err := json.Unmarshal(b, &generic); err != nil {
		t.Fatal(err)
	}
	var keys []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				keys = append(keys, k)
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(generic)
	allowed := map[string]bool{"version": true, "lastRestart": true, "cause": true, "pending": true, "since": true, "rotations": true,
		"id": true, "files": true, "envs": true, "previousVersionId": true, "versionId": true}
	for _, k := range keys {
		if !allowed[k] {
			t.Errorf("the marker has a field %q", k)
		}
	}
	if _, err := DecodeMarker(b); err != nil {
		t.Error(err)
	}
}
