//go:build linux

package tmpfs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/secretfetch/secretfetch/internal/tmpfs/tmpfstest"
)

// readSet reads the named files through one resolution of ..data, the way
// an app that wants one consistent set reads them.
func readSet(t *testing.T, dir string, names ...string) map[string]string {
	t.Helper()
	target, err := os.Readlink(filepath.Join(dir, DataLink))
	if err != nil {
		t.Fatalf("reading %s: %v", DataLink, err)
	}
	out := map[string]string{}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, target, n))
		if err != nil {
			t.Fatalf("reading %s through %s: %v", n, target, err)
		}
		out[n] = string(b)
	}
	return out
}

// checkVisible checks that name is our link and reads, through it, want
// with mode.
func checkVisible(t *testing.T, dir, name string, mode fs.FileMode, want string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if target, err := os.Readlink(p); err != nil || target != DataLink+"/"+name {
		t.Errorf("%s: link to %q (%v), want %q", name, target, err, DataLink+"/"+name)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != mode {
		t.Errorf("%s: mode %v, want a regular file with %v", name, fi.Mode(), mode)
	}
	if got, _ := os.ReadFile(p); string(got) != want {
		t.Errorf("%s: content of %d bytes differs from the %d bytes written", name, len(got), len(want))
	}
}

// dataDirs lists the data directories in dir.
func dataDirs(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, n := range listDir(t, dir) {
		if isDataDirName(n) {
			out = append(out, n)
		}
	}
	return out
}

func TestWriteSet(t *testing.T) { testWriteSet(t, t.TempDir()) }

func TestWriteSetOnRealTmpfs(t *testing.T) {
	tmpfstest.Run(t, func(t *testing.T, dir string) { testWriteSet(t, dir) })
}

func testWriteSet(t *testing.T, root string) {
	sub := func(t *testing.T) string {
		dir, err := os.MkdirTemp(root, "case-")
		if err != nil {
			t.Fatal(err)
		}
		return dir
	}

	t.Run("first set, then a swap that keeps, replaces, adds and drops", func(t *testing.T) {
		dir := sub(t)
		old := syscall.Umask(0o077)
		defer syscall.Umask(old)
		d := open(t, dir)
		err := d.WriteSet(Set{
			Files: []File{{Name: "a", Mode: 0o400, Data: []byte("a1")}, {Name: "b", Mode: 0o440, Data: []byte("b1")}, {Name: "gone", Mode: 0o444, Data: []byte("g")}},
			State: []byte(`{"v":1}`),
		})
		if err != nil {
			t.Fatal(err)
		}
		checkVisible(t, dir, "a", 0o400, "a1")
		checkVisible(t, dir, "b", 0o440, "b1")
		checkVisible(t, dir, "gone", 0o444, "g")
		first := dataDirs(t, dir)
		if len(first) != 1 {
			t.Fatalf("data directories %q, want one", first)
		}
		if fi, err := os.Stat(filepath.Join(dir, first[0])); err != nil || fi.Mode().Perm() != dataDirMode {
			t.Errorf("data directory mode %v (%v), want %v", fi.Mode(), err, fs.FileMode(dataDirMode))
		}
		if st, err := d.ReadState(); err != nil || string(st) != `{"v":1}` {
			t.Errorf("ReadState = %q, %v", st, err)
		}

		err = d.WriteSet(Set{
			Files: []File{{Name: "b", Mode: 0o440, Data: []byte("b2")}, {Name: "new", Mode: 0o400, Data: []byte("n")}},
			Keep:  []string{"a"},
			State: []byte(`{"v":2}`),
		})
		if err != nil {
			t.Fatal(err)
		}
		checkVisible(t, dir, "a", 0o400, "a1")
		checkVisible(t, dir, "b", 0o440, "b2")
		checkVisible(t, dir, "new", 0o400, "n")
		second := dataDirs(t, dir)
		if len(second) != 1 || second[0] == first[0] {
			t.Errorf("data directories %q after the swap, want one new one (was %q)", second, first)
		}
		want := []string{DataLink, second[0], "a", "b", "new"}
		slices.Sort(want)
		if got := listDir(t, dir); !slices.Equal(got, want) {
			t.Errorf("directory holds %q, want %q", got, want)
		}
		if got := listDir(t, filepath.Join(dir, second[0])); !slices.Equal(got, []string{StateName, "a", "b", "new"}) {
			t.Errorf("data directory holds %q", got)
		}
		if st, err := d.ReadState(); err != nil || string(st) != `{"v":2}` {
			t.Errorf("ReadState = %q, %v", st, err)
		}
	})

	t.Run("crash between the write and the rename", func(t *testing.T) {
		dir := sub(t)
		d := open(t, dir)
		if err := d.WriteSet(Set{Files: []File{{Name: "user", Mode: 0o400, Data: []byte("u1")}, {Name: "pass", Mode: 0o400, Data: []byte("p1")}}}); err != nil {
			t.Fatal(err)
		}
		// A panic in the hook stands in for the process being killed: no
		// error path runs, so whatever a crash leaves stays.
		d.failAt = func(step string, _ int) error {
			if step == "swap" {
				panic("killed")
			}
			return nil
		}
		func() {
			defer func() { _ = recover() }()
			_ = d.WriteSet(Set{Files: []File{{Name: "user", Mode: 0o400, Data: []byte("u2")}, {Name: "pass", Mode: 0o400, Data: []byte("p2")}}})
		}()
		d.failAt = nil
		if n := len(dataDirs(t, dir)); n != 2 {
			t.Fatalf("%d data directories after the crash, want the old one and the unfinished one", n)
		}
		if got := readSet(t, dir, "user", "pass"); got["user"] != "u1" || got["pass"] != "p1" {
			t.Error("after a crash before the rename, the set read through ..data is not the old one")
		}
		checkVisible(t, dir, "user", 0o400, "u1")
		checkVisible(t, dir, "pass", 0o400, "p1")

		// The next run cleans up and swaps.
		if err := d.WriteSet(Set{Files: []File{{Name: "user", Mode: 0o400, Data: []byte("u3")}, {Name: "pass", Mode: 0o400, Data: []byte("p3")}}}); err != nil {
			t.Fatal(err)
		}
		if got := readSet(t, dir, "user", "pass"); got["user"] != "u3" || got["pass"] != "p3" {
			t.Error("the run after the crash did not switch to its set")
		}
		if n := len(dataDirs(t, dir)); n != 1 {
			t.Errorf("%d data directories, want 1: the crash's leftovers were not removed", n)
		}
		if slices.Contains(listDir(t, dir), dataTmpLink) {
			t.Errorf("%s left behind", dataTmpLink)
		}
	})

	t.Run("failure while writing keeps the old set and leaves nothing", func(t *testing.T) {
		dir := sub(t)
		d := open(t, dir)
		if err := d.WriteSet(Set{Files: []File{{Name: "a", Mode: 0o400, Data: []byte("old")}}}); err != nil {
			t.Fatal(err)
		}
		before := listDir(t, dir)
		boom := errors.New("injected failure")
		for _, step := range []string{"file", "swap"} {
			d.failAt = func(s string, _ int) error {
				if s == step {
					return boom
				}
				return nil
			}
			err := d.WriteSet(Set{Files: []File{{Name: "a", Mode: 0o400, Data: []byte("new")}, {Name: "b", Mode: 0o400, Data: []byte("new")}}})
			if !errors.Is(err, boom) {
				t.Fatalf("WriteSet failing at %s = %v, want the injected failure", step, err)
			}
			if got := listDir(t, dir); !slices.Equal(got, before) {
				t.Errorf("failing at %s: directory holds %q, want %q as before", step, got, before)
			}
			checkVisible(t, dir, "a", 0o400, "old")
		}
	})

	t.Run("keep without a current set, or of a missing file", func(t *testing.T) {
		dir := sub(t)
		d := open(t, dir)
		if err := d.WriteSet(Set{Keep: []string{"a"}}); err == nil {
			t.Error("WriteSet kept a file with no current set")
		}
		if err := d.WriteSet(Set{Files: []File{{Name: "a", Mode: 0o400, Data: []byte("x")}}}); err != nil {
			t.Fatal(err)
		}
		if err := d.WriteSet(Set{Keep: []string{"missing"}}); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("keeping a missing file = %v, want ErrNotExist", err)
		}
		checkVisible(t, dir, "a", 0o400, "x")
	})

	t.Run("symlinks we did not make are refused", func(t *testing.T) {
		outside := filepath.Join(root, "outside-"+filepath.Base(sub(t)))
		if err := os.WriteFile(outside, []byte("untouched"), 0o600); err != nil {
			t.Fatal(err)
		}
		cases := map[string]func(dir string) error{
			"at a file's name": func(dir string) error { return os.Symlink(outside, filepath.Join(dir, "a")) },
			"at another name":  func(dir string) error { return os.Symlink(outside, filepath.Join(dir, "other")) },
			"..data elsewhere": func(dir string) error { return os.Symlink(root, filepath.Join(dir, DataLink)) },
			"..data_tmp elsewhere": func(dir string) error {
				return os.Symlink("../x", filepath.Join(dir, dataTmpLink))
			},
			"data directory name as a link": func(dir string) error {
				return os.Symlink(root, filepath.Join(dir, "..2026_01_01_00_00_00.0011aabb"))
			},
			"file's link to another file": func(dir string) error {
				return os.Symlink(DataLink+"/b", filepath.Join(dir, "a"))
			},
		}
		for name, plant := range cases {
			t.Run(name, func(t *testing.T) {
				dir := sub(t)
				if err := plant(dir); err != nil {
					t.Fatal(err)
				}
				before := listDir(t, dir)
				err := open(t, dir).WriteSet(Set{Files: []File{{Name: "a", Mode: 0o400, Data: []byte("x")}}})
				if !errors.Is(err, ErrSymlink) && !errors.Is(err, ErrForeign) {
					t.Fatalf("WriteSet = %v, want ErrSymlink or ErrForeign", err)
				}
				if got := listDir(t, dir); !slices.Equal(got, before) {
					t.Errorf("directory holds %q, want %q as planted", got, before)
				}
			})
		}
		if got, _ := os.ReadFile(outside); string(got) != "untouched" {
			t.Error("a planted symlink's target was changed")
		}
	})

	t.Run("a regular file at a file's name is refused, others are left alone", func(t *testing.T) {
		dir := sub(t)
		if err := os.WriteFile(filepath.Join(dir, "a"), []byte("someone's"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "unrelated"), []byte("keep"), 0o600); err != nil {
			t.Fatal(err)
		}
		d := open(t, dir)
		if err := d.WriteSet(Set{Files: []File{{Name: "a", Mode: 0o400, Data: []byte("x")}}}); !errors.Is(err, ErrForeign) {
			t.Errorf("WriteSet over a regular file = %v, want ErrForeign", err)
		}
		if err := d.WriteSet(Set{Files: []File{{Name: "b", Mode: 0o400, Data: []byte("x")}}}); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(filepath.Join(dir, "unrelated")); string(got) != "keep" {
			t.Error("an unrelated file was changed")
		}
	})

	t.Run("bad names refused", func(t *testing.T) {
		dir := sub(t)
		for _, s := range []Set{
			{Files: []File{{Name: DataLink, Mode: 0o400}}},
			{Files: []File{{Name: StateName, Mode: 0o400}}},
			{Files: []File{{Name: "..x", Mode: 0o400}}},
			{Files: []File{{Name: "a/b", Mode: 0o400}}},
			{Files: []File{{Name: "a", Mode: 0o400}}, Keep: []string{"a"}},
			{Files: []File{{Name: "a", Mode: fs.ModeSetuid | 0o400}}},
		} {
			if err := open(t, dir).WriteSet(s); err == nil {
				t.Errorf("WriteSet(%+v) succeeded", s)
			}
		}
		if got := listDir(t, dir); len(got) != 0 {
			t.Errorf("directory holds %q", got)
		}
	})

	t.Run("no state", func(t *testing.T) {
		dir := sub(t)
		d := open(t, dir)
		if _, err := d.ReadState(); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ReadState with no set = %v, want ErrNotExist", err)
		}
		if err := d.WriteSet(Set{Files: []File{{Name: "a", Mode: 0o400, Data: []byte("x")}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := d.ReadState(); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ReadState of a set without state = %v, want ErrNotExist", err)
		}
	})
}

func TestIsDataDirName(t *testing.T) {
	for name, want := range map[string]bool{
		"..2026_12_01_04_06_29.1a2b3c4d": true,
		"..2026_12_01_04_06_29.1A2B3C4D": false,
		"..2026_12_01_04_06_29.1a2b3c4":  false,
		"..2026-12_01_04_06_29.1a2b3c4d": false,
		"..data":                         false,
		"..data_tmp":                     false,
		"a":                              false,
	} {
		if got := isDataDirName(name); got != want {
			t.Errorf("isDataDirName(%q) = %v, want %v", name, got, want)
		}
	}
	if !strings.HasPrefix(StateName, "..") {
		t.Error("StateName must start with .., which no plan file name can")
	}
}
