//go:build linux

package tmpfs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/secretfetch/secretfetch/internal/tmpfs/tmpfstest"
)

// The environment of the writer, a copy of this test binary run as another
// user (see writeAs).
const (
	envWriteRoot   = "SECRETFETCH_TEST_WRITE_ROOT"
	envWriteSubdir = "SECRETFETCH_TEST_WRITE_SUBDIR"
	envWriteMode   = "SECRETFETCH_TEST_WRITE_MODE"
	envWriteData   = "SECRETFETCH_TEST_WRITE_DATA"
)

// protectedSymlinks is the sysctl that the nodes' systemd sets to 1.
const protectedSymlinks = "/proc/sys/fs/protected_symlinks"

// user is a process identity: a UID, its primary GID and supplementary
// groups, as a container's securityContext and the pod's fsGroup make it.
type user struct {
	uid, gid uint32
	groups   []uint32
}

func (u user) String() string { return fmt.Sprintf("uid %d gid %d groups %v", u.uid, u.gid, u.groups) }

func (u user) credential() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: u.uid, Gid: u.gid, Groups: u.groups}}
}

// TestLayoutOtherReaders reads the layout as the app containers of a pod do:
// other users than the writer, each opening <name> as cat does, on a tmpfs
// whose root is what the kubelet makes of a memory emptyDir (sticky and
// world-writable; setgid with fsGroup), with fs.protected_symlinks=1.
//
// In a directory of the writer's own (OwnSubdir), every reader that a mode
// admits reads the file, before and after a swap, and no other reader does.
// Laid out in the root itself, the links can be followed by their owner
// only: root and the fsGroup's members are refused too.
func TestLayoutOtherReaders(t *testing.T) {
	if root := os.Getenv(envWriteRoot); root != "" {
		writeSetHere(t, root)
		return
	}
	tmpfstest.Run(t, func(t *testing.T, dir string) {
		setSysctl(t, protectedSymlinks, "1")
		bin := shareBinary(t)
		openPath(t, dir)

		const fsGroup = 3000
		var (
			app1      = user{1000, 1000, nil}
			app2      = user{2000, 2000, nil}
			grouped1  = user{1000, 1000, []uint32{fsGroup}}
			grouped2  = user{2000, 2000, []uint32{fsGroup}}
			rootGroup = user{0, 0, []uint32{fsGroup}}
			root      = user{0, 0, nil}
			outsider  = user{4000, 4000, nil}
			nonroot   = user{65532, 65532, nil}
			nonrootFS = user{65532, 65532, []uint32{fsGroup}}
		)
		for _, tt := range []struct {
			name    string
			fsGroup bool // the kubelet's fsGroup handling of the volume's root
			mode    fs.FileMode
			writer  user
			readers []user // may read
			refused []user // may not
		}{
			{"one UID", false, 0o400, app1, []user{app1}, []user{app2}},
			{"several UIDs with fsGroup and 0440", true, 0o440, nonrootFS, []user{grouped1, grouped2, rootGroup}, []user{outsider}},
			{"several UIDs with 0444", false, 0o444, nonroot, []user{app1, app2, root}, nil},
			{"a root reader with 0444", false, 0o444, nonroot, []user{root}, nil},
		} {
			t.Run(tt.name, func(t *testing.T) {
				vol := emptyDirRoot(t, dir, tt.fsGroup, fsGroup)
				for round, data := range []string{"first-value", "second-value-after-the-swap"} {
					writeAs(t, bin, tt.writer, vol, inOwnSubdir(tt.mode), data)
					for _, r := range tt.readers {
						if got, err := catAs(r, filepath.Join(vol, "files", "k")); err != nil {
							t.Errorf("round %d: %s cannot open files/k: %v", round, r, err)
						} else if got != data {
							t.Errorf("round %d: %s read %d bytes that differ from the %d written", round, r, len(got), len(data))
						}
					}
					for _, r := range tt.refused {
						if _, err := catAs(r, filepath.Join(vol, "files", "k")); err == nil {
							t.Errorf("round %d: %s opened files/k, which its mode %04o does not allow", round, r, tt.mode)
						}
					}
				}
			})
		}

		// The same layout in the volume's root: the defect of an earlier
		// layout, and the reason for OwnSubdir. Only the links' owner can
		// follow them; the kernel refuses root and the fsGroup alike.
		t.Run("links in the sticky root", func(t *testing.T) {
			vol := emptyDirRoot(t, dir, true, fsGroup)
			writeAs(t, bin, nonrootFS, vol, "0440", "value")
			if _, err := catAs(nonrootFS, filepath.Join(vol, "k")); err != nil {
				t.Errorf("the links' owner cannot open k: %v", err)
			}
			for _, r := range []user{grouped1, rootGroup} {
				if _, err := catAs(r, filepath.Join(vol, "k")); err == nil {
					t.Errorf("%s followed a link of another user in a sticky, world-writable directory; is fs.protected_symlinks in force?", r)
				}
			}
		})
	})
}

// inOwnSubdir is the spec of writeAs for a layout in the directory "files".
func inOwnSubdir(mode fs.FileMode) string { return fmt.Sprintf("%04o/files", mode) }

// emptyDirRoot makes a directory as the kubelet makes a memory emptyDir's
// root: owned by root, 1777, or 3777 with group fsGroup.
func emptyDirRoot(t *testing.T, dir string, withFSGroup bool, fsGroup int) string {
	t.Helper()
	vol, err := os.MkdirTemp(dir, "volume-")
	if err != nil {
		t.Fatal(err)
	}
	mode := os.FileMode(0o777) | os.ModeSticky
	if withFSGroup {
		if err := os.Chown(vol, 0, fsGroup); err != nil {
			t.Fatal(err)
		}
		mode |= os.ModeSetgid
	}
	if err := os.Chmod(vol, mode); err != nil {
		t.Fatal(err)
	}
	return vol
}

// writeAs runs WriteSet as u, in a copy of this test binary: the files and
// links get u's ownership, as init-fetch's do in a pod. spec is
// "<mode>/<subdir>" or "<mode>" for the root.
func writeAs(t *testing.T, bin string, u user, vol, spec, data string) {
	t.Helper()
	mode, subdir, _ := strings.Cut(spec, "/")
	cmd := exec.Command(bin, "-test.run", "^TestLayoutOtherReaders$", "-test.count=1")
	cmd.Env = append(os.Environ(), envWriteRoot+"="+vol, envWriteSubdir+"="+subdir, envWriteMode+"="+mode, envWriteData+"="+data)
	cmd.SysProcAttr = u.credential()
	cmd.Dir = "/"
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("WriteSet as %s: %v\n%s", u, err, out)
	}
}

// writeSetHere is the writer's side of writeAs.
func writeSetHere(t *testing.T, root string) {
	mode, err := strconv.ParseUint(os.Getenv(envWriteMode), 8, 32)
	if err != nil {
		t.Fatal(err)
	}
	d, err := OpenDir(root)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if sub := os.Getenv(envWriteSubdir); sub != "" {
		if d, err = d.OwnSubdir(sub); err != nil {
			t.Fatal(err)
		}
		defer d.Close()
	}
	if err := d.WriteSet(Set{Files: []File{{Name: "k", Mode: fs.FileMode(mode), Data: []byte(os.Getenv(envWriteData))}}}); err != nil {
		t.Fatal(err)
	}
}

// catAs opens path as u with cat, as an app's plain open(2) does.
func catAs(u user, path string) (string, error) {
	cmd := exec.Command("cat", path)
	cmd.SysProcAttr = u.credential()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// setSysctl sets a sysctl for the test and puts the old value back.
func setSysctl(t *testing.T, path, value string) {
	t.Helper()
	old, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("reading %s: %v", path, err)
	}
	if strings.TrimSpace(string(old)) == value {
		return
	}
	if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
		t.Skipf("setting %s to %s: %v", path, value, err)
	}
	t.Cleanup(func() { _ = os.WriteFile(path, old, 0o644) })
}

// shareBinary copies this test binary where other users can run it: the
// Go build cache's directories are root's own.
func shareBinary(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "secretfetch-tmpfs-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "tmpfs.test")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// openPath lets every user reach dir: the test's temporary directories
// above it are 0700.
func openPath(t *testing.T, dir string) {
	t.Helper()
	tmp := filepath.Clean(os.TempDir())
	for p := filepath.Dir(dir); strings.HasPrefix(p, tmp+"/"); p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOwnSubdir: the layout directory is made once and reused, and one that
// anybody else may write into (the kubelet makes a missing subPath with the
// root's world-writable mode) or that is a symlink is refused.
func TestOwnSubdir(t *testing.T) {
	for _, tt := range []struct {
		name    string
		prepare func(t *testing.T, root string)
		wantErr error
	}{
		{"made fresh", func(*testing.T, string) {}, nil},
		{"made by an earlier run", func(t *testing.T, root string) { mkdir(t, filepath.Join(root, "files"), 0o755) }, nil},
		{"world-writable", func(t *testing.T, root string) { mkdir(t, filepath.Join(root, "files"), 0o777) }, ErrShared},
		{"sticky and world-writable", func(t *testing.T, root string) {
			mkdir(t, filepath.Join(root, "files"), 0o777|os.ModeSticky)
		}, ErrShared},
		{"group-writable", func(t *testing.T, root string) { mkdir(t, filepath.Join(root, "files"), 0o775) }, ErrShared},
		{"a symlink", func(t *testing.T, root string) {
			mkdir(t, filepath.Join(root, "elsewhere"), 0o755)
			if err := os.Symlink("elsewhere", filepath.Join(root, "files")); err != nil {
				t.Fatal(err)
			}
		}, ErrForeign},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			tt.prepare(t, root)
			d := open(t, root)
			sub, err := d.OwnSubdir("files")
			if !errors.Is(err, tt.wantErr) || (err != nil) != (tt.wantErr != nil) {
				t.Fatalf("OwnSubdir: %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			defer sub.Close()
			fi, err := os.Lstat(filepath.Join(root, "files"))
			if err != nil {
				t.Fatal(err)
			}
			if !fi.IsDir() || fi.Mode().Perm() != 0o755 {
				t.Errorf("files: %v, want a directory with 0755", fi.Mode())
			}
			if err := sub.WriteSet(Set{Files: []File{{Name: "k", Mode: 0o400, Data: []byte("v")}}}); err != nil {
				t.Fatal(err)
			}
			checkVisible(t, filepath.Join(root, "files"), "k", 0o400, "v")
		})
	}
}

func mkdir(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}
