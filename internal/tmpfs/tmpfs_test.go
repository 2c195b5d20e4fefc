//go:build linux

package tmpfs

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/secretfetch/secretfetch/internal/tmpfs/tmpfstest"
)

// diskDir returns a temporary directory that is not memory-backed, or skips.
func diskDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if m := uint32(st.Type); m == uint32(unix.TMPFS_MAGIC) || m == uint32(unix.RAMFS_MAGIC) {
		t.Skipf("skipping: the test's temporary directory %s is itself on tmpfs; set TMPDIR to a disk", dir)
	}
	return dir
}

func open(t *testing.T, dir string) *Dir {
	t.Helper()
	d, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// listDir returns the names in dir, sorted.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func checkFile(t *testing.T, path string, mode fs.FileMode, want []byte) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != mode {
		t.Errorf("%s: mode %v, want a regular file with %v", path, fi.Mode(), mode)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: content of %d bytes differs from the %d bytes written", path, len(got), len(want))
	}
}

func TestCheckMemoryBackedRefusesDisk(t *testing.T) {
	dir := diskDir(t)
	err := CheckMemoryBacked(dir)
	if !errors.Is(err, ErrNotMemoryBacked) {
		t.Fatalf("CheckMemoryBacked(%s) = %v, want ErrNotMemoryBacked", dir, err)
	}
	if !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "magic 0x") {
		t.Errorf("error %q does not name the directory and its file system", err)
	}
}

func TestCheckMemoryBackedDevShm(t *testing.T) {
	// /dev/shm is tmpfs on Linux systems that have it; no mount needed.
	var st unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &st); err != nil || uint32(st.Type) != uint32(unix.TMPFS_MAGIC) {
		t.Skip("skipping: /dev/shm is missing or not tmpfs here")
	}
	if err := CheckMemoryBacked("/dev/shm"); err != nil {
		t.Errorf("CheckMemoryBacked(/dev/shm) = %v", err)
	}
}

func TestOpenDirRefusesSymlink(t *testing.T) {
	base := t.TempDir()
	real := filepath.Join(base, "real")
	if err := os.Mkdir(real, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenDir(link); !errors.Is(err, ErrSymlink) {
		t.Errorf("OpenDir(symlink to a directory) = %v, want ErrSymlink", err)
	}
	if err := CheckMemoryBacked(link); !errors.Is(err, ErrSymlink) {
		t.Errorf("CheckMemoryBacked(symlink) = %v, want ErrSymlink", err)
	}
	if _, err := OpenDir(filepath.Join(base, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("OpenDir(missing) = %v, want ErrNotExist", err)
	}
}

func TestWriteAll(t *testing.T) {
	testWriteAll(t, t.TempDir())
}

func TestWriteAllOnRealTmpfs(t *testing.T) {
	tmpfstest.Run(t, func(t *testing.T, dir string) {
		if err := CheckMemoryBacked(dir); err != nil {
			t.Fatalf("CheckMemoryBacked on a tmpfs: %v", err)
		}
		testWriteAll(t, dir)
	})
}

// testWriteAll runs the write checks in subdirectories of root.
func testWriteAll(t *testing.T, root string) {
	sub := func(t *testing.T) string {
		dir, err := os.MkdirTemp(root, "case-")
		if err != nil {
			t.Fatal(err)
		}
		return dir
	}
	binary := []byte{0, 1, 2, 0xff, '\n'}

	t.Run("modes exact under a strict umask", func(t *testing.T) {
		dir := sub(t)
		old := syscall.Umask(0o077)
		defer syscall.Umask(old)
		files := []File{
			{Name: "a", Mode: 0o400, Data: []byte("alpha")},
			{Name: "b.txt", Mode: 0o440, Data: []byte("beta")},
			{Name: "c", Mode: 0o444, Data: binary},
			{Name: "empty", Mode: 0o400, Data: nil},
		}
		if err := open(t, dir).WriteAll(files); err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			checkFile(t, filepath.Join(dir, f.Name), f.Mode, f.Data)
		}
		if got := listDir(t, dir); !slices.Equal(got, []string{"a", "b.txt", "c", "empty"}) {
			t.Errorf("directory holds %q", got)
		}
	})

	t.Run("symlink destination refused", func(t *testing.T) {
		dir := sub(t)
		target := filepath.Join(root, "target-"+filepath.Base(dir))
		if err := os.WriteFile(target, []byte("untouched"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(dir, "b")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join(root, "nowhere"), filepath.Join(dir, "c")); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"b", "c"} {
			err := open(t, dir).WriteAll([]File{{Name: "a", Mode: 0o400, Data: []byte("x")}, {Name: name, Mode: 0o400, Data: []byte("y")}})
			if !errors.Is(err, ErrSymlink) {
				t.Fatalf("WriteAll over symlink %s = %v, want ErrSymlink", name, err)
			}
		}
		if got, _ := os.ReadFile(target); string(got) != "untouched" {
			t.Error("the symlink's target was changed")
		}
		if _, err := os.Lstat(filepath.Join(root, "nowhere")); !errors.Is(err, fs.ErrNotExist) {
			t.Error("a dangling symlink's target was created")
		}
		if got := listDir(t, dir); !slices.Equal(got, []string{"b", "c"}) {
			t.Errorf("directory holds %q, want only the two symlinks", got)
		}
	})

	t.Run("non-regular destination refused", func(t *testing.T) {
		dir := sub(t)
		if err := os.Mkdir(filepath.Join(dir, "d"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mkfifo(filepath.Join(dir, "p"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"d", "p"} {
			err := open(t, dir).WriteAll([]File{{Name: name, Mode: 0o400, Data: []byte("y")}})
			if !errors.Is(err, ErrNotRegular) {
				t.Errorf("WriteAll over %s = %v, want ErrNotRegular", name, err)
			}
		}
		if got := listDir(t, dir); !slices.Equal(got, []string{"d", "p"}) {
			t.Errorf("directory holds %q", got)
		}
	})

	t.Run("bad names refused", func(t *testing.T) {
		dir := sub(t)
		for _, files := range [][]File{
			{{Name: "../x", Mode: 0o400}},
			{{Name: "..", Mode: 0o400}},
			{{Name: "", Mode: 0o400}},
			{{Name: TempPrefix + "x", Mode: 0o400}},
			{{Name: "a", Mode: 0o400}, {Name: "a", Mode: 0o400}},
			{{Name: "a", Mode: fs.ModeSetuid | 0o400}},
		} {
			if err := open(t, dir).WriteAll(files); err == nil {
				t.Errorf("WriteAll(%q) succeeded", files[0].Name)
			}
		}
		if got := listDir(t, dir); len(got) != 0 {
			t.Errorf("directory holds %q", got)
		}
	})

	t.Run("failure after temp files leaves nothing", func(t *testing.T) {
		dir := sub(t)
		d := open(t, dir)
		boom := errors.New("injected failure")
		d.failAt = func(step string, i int) error {
			if step == "temp" && i == 1 {
				return boom
			}
			return nil
		}
		err := d.WriteAll([]File{{Name: "a", Mode: 0o400, Data: []byte("1")}, {Name: "b", Mode: 0o400, Data: []byte("2")}, {Name: "c", Mode: 0o400, Data: []byte("3")}})
		if !errors.Is(err, boom) {
			t.Fatalf("WriteAll = %v, want the injected failure", err)
		}
		if got := listDir(t, dir); len(got) != 0 {
			t.Errorf("directory holds %q after a failed write, want nothing", got)
		}
	})

	t.Run("failure during renames takes back new files", func(t *testing.T) {
		dir := sub(t)
		if err := os.WriteFile(filepath.Join(dir, "a"), []byte("old"), 0o400); err != nil {
			t.Fatal(err)
		}
		d := open(t, dir)
		boom := errors.New("injected failure")
		d.failAt = func(step string, i int) error {
			if step == "rename" && i == 2 {
				return boom
			}
			return nil
		}
		err := d.WriteAll([]File{{Name: "a", Mode: 0o400, Data: []byte("1")}, {Name: "b", Mode: 0o400, Data: []byte("2")}, {Name: "c", Mode: 0o400, Data: []byte("3")}})
		if !errors.Is(err, boom) {
			t.Fatalf("WriteAll = %v, want the injected failure", err)
		}
		// "a" existed and was replaced; "b" was new and is taken back.
		if got := listDir(t, dir); !slices.Equal(got, []string{"a"}) {
			t.Errorf("directory holds %q, want only the file that was there before", got)
		}
	})

	t.Run("rerun replaces files and removes stale temps", func(t *testing.T) {
		dir := sub(t)
		stale := filepath.Join(dir, TempPrefix+"a-0011223344556677")
		if err := os.WriteFile(stale, []byte("half"), 0o400); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "a"), []byte("from the first attempt"), 0o444); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "unrelated"), []byte("keep"), 0o600); err != nil {
			t.Fatal(err)
		}
		files := []File{{Name: "a", Mode: 0o400, Data: []byte("second")}, {Name: "b", Mode: 0o440, Data: binary}}
		if err := open(t, dir).WriteAll(files); err != nil {
			t.Fatal(err)
		}
		checkFile(t, filepath.Join(dir, "a"), 0o400, []byte("second"))
		checkFile(t, filepath.Join(dir, "b"), 0o440, binary)
		if got := listDir(t, dir); !slices.Equal(got, []string{"a", "b", "unrelated"}) {
			t.Errorf("directory holds %q", got)
		}
		// And once more over its own result.
		if err := open(t, dir).WriteAll(files); err != nil {
			t.Fatalf("second WriteAll over its own files: %v", err)
		}
	})

	t.Run("directory swapped for a symlink after open", func(t *testing.T) {
		dir := sub(t)
		d := open(t, dir)
		moved := dir + "-moved"
		elsewhere := dir + "-elsewhere"
		if err := os.Mkdir(elsewhere, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(dir, moved); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(elsewhere, dir); err != nil {
			t.Fatal(err)
		}
		if err := d.WriteAll([]File{{Name: "a", Mode: 0o400, Data: []byte("x")}}); err != nil {
			t.Fatal(err)
		}
		if got := listDir(t, elsewhere); len(got) != 0 {
			t.Errorf("the write followed the swapped-in symlink: %q", got)
		}
		if got := listDir(t, moved); !slices.Equal(got, []string{"a"}) {
			t.Errorf("the opened directory holds %q, want [a]", got)
		}
	})
}

func TestZero(t *testing.T) {
	a, b := []byte("one"), []byte("two!")
	Zero([]File{{Data: a}, {Data: b}, {}})
	if !bytes.Equal(a, make([]byte, 3)) || !bytes.Equal(b, make([]byte, 4)) {
		t.Error("Zero left bytes in place")
	}
}

// TestReadFile: ReadFile reads back what WriteAll wrote, and refuses what
// is not a small regular file of this user: a symlink (never followed), a
// FIFO (never blocked on), a directory, a file over the limit, and a file
// of another user, which can be planted in a sticky, world-writable root.
func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	d := open(t, dir)
	if err := d.WriteAll([]File{{Name: "marker", Mode: 0o400, Data: []byte(`{"v":1}`)}}); err != nil {
		t.Fatal(err)
	}
	if got, err := d.ReadFile("marker", 64); err != nil || string(got) != `{"v":1}` {
		t.Fatalf("ReadFile = %q, %v", got, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "target"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("target", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "big"), bytes.Repeat([]byte("x"), 65), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		want error
	}{
		{"absent", fs.ErrNotExist},
		{"link", ErrSymlink},
		{"fifo", ErrNotRegular},
		{"sub", ErrNotRegular},
		{"big", nil},
		{"../marker", nil},
	} {
		got, err := d.ReadFile(c.name, 64)
		if err == nil || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("ReadFile(%q) = %q, %v; want an error wrapping %v", c.name, got, err, c.want)
		}
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(filepath.Join(dir, "target"), 12345, 12345); err != nil {
			t.Fatal(err)
		}
		if _, err := d.ReadFile("target", 64); !errors.Is(err, ErrForeign) {
			t.Errorf("ReadFile of another user's file = %v, want %v", err, ErrForeign)
		}
	}
}
