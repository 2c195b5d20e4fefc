//go:build linux

package tmpfs

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// OpenDir opens path as a directory. The last element must not be a
// symlink (O_NOFOLLOW); symlinks higher up, such as /var/run -> /run, are the
// system's and are followed as usual.
func OpenDir(path string) (*Dir, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		// With O_DIRECTORY, Linux reports a symlink as ENOTDIR rather than
		// ELOOP; look again to say which it is.
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
				return nil, fmt.Errorf("opening directory %s: %w", path, ErrSymlink)
			}
		}
		return nil, fmt.Errorf("opening directory %s: %w", path, err)
	}
	return &Dir{path: path, f: os.NewFile(uintptr(fd), path)}, nil
}

// CheckMemoryBacked checks, with fstatfs on the open directory, that it is on
// tmpfs or ramfs (an emptyDir with medium: Memory is tmpfs), so that no value
// reaches a disk.
func (d *Dir) CheckMemoryBacked() error {
	var st unix.Statfs_t
	if err := unix.Fstatfs(d.fd(), &st); err != nil {
		return fmt.Errorf("checking the file system of %s: %w", d.path, err)
	}
	// The width and sign of Type differ between architectures; the magic
	// numbers are 32-bit.
	switch magic := uint32(st.Type); magic {
	case uint32(unix.TMPFS_MAGIC), uint32(unix.RAMFS_MAGIC):
		return nil
	default:
		return fmt.Errorf("%s is on %s: %w", d.path, fsName(magic), ErrNotMemoryBacked)
	}
}

func fsName(magic uint32) string {
	names := map[uint32]string{
		uint32(unix.EXT4_SUPER_MAGIC):      "ext2/3/4",
		uint32(unix.OVERLAYFS_SUPER_MAGIC): "overlayfs",
		uint32(unix.XFS_SUPER_MAGIC):       "xfs",
		uint32(unix.BTRFS_SUPER_MAGIC):     "btrfs",
		uint32(unix.NFS_SUPER_MAGIC):       "nfs",
		uint32(unix.V9FS_MAGIC):            "9p",
		uint32(unix.FUSE_SUPER_MAGIC):      "fuse",
	}
	if n, ok := names[magic]; ok {
		return fmt.Sprintf("%s (magic %#x)", n, magic)
	}
	return fmt.Sprintf("a file system with magic %#x", magic)
}

func (d *Dir) fd() int { return int(d.f.Fd()) }

// WriteAll writes every file, or none. Every file is first written in full
// to a temporary file and synced; only then are they renamed into place. If
// anything fails before the renames, the temporary files are removed and the
// directory is as it was. Destination names that already exist as regular
// files (left by an earlier attempt: kubelet restarts a failed init container
// on the same emptyDir) are replaced; temporary files of an earlier attempt
// are removed first.
func (d *Dir) WriteAll(files []File) (err error) {
	seen := make(map[string]bool, len(files))
	for _, f := range files {
		if err := checkName(f.Name); err != nil {
			return fmt.Errorf("writing into %s: %w", d.path, err)
		}
		if seen[f.Name] {
			return fmt.Errorf("writing into %s: %q is given twice", d.path, f.Name)
		}
		seen[f.Name] = true
		if f.Mode&^fs.ModePerm != 0 {
			return fmt.Errorf("writing %s: mode %v is not a plain permission", f.Name, f.Mode)
		}
	}
	if err := d.removeStale(); err != nil {
		return err
	}
	for _, f := range files {
		if _, err := d.checkDest(f.Name); err != nil {
			return err
		}
	}

	temps := make([]string, 0, len(files))
	defer func() {
		if err != nil {
			for _, t := range temps {
				// Best effort: the error that brought us here matters more.
				_ = unix.Unlinkat(d.fd(), t, 0)
			}
		}
	}()
	for i, f := range files {
		tmp, err := d.writeTemp(f)
		if err != nil {
			return fmt.Errorf("writing %s: %w", f.Name, err)
		}
		temps = append(temps, tmp)
		if d.failAt != nil {
			if err := d.failAt("temp", i); err != nil {
				return err
			}
		}
	}

	// Check again right before the renames, which shrinks the window in which
	// a symlink could be planted. Even then rename(2) replaces a symlink at
	// the destination instead of following it, so no write goes through one.
	existed := make([]bool, len(files))
	for i, f := range files {
		if existed[i], err = d.checkDest(f.Name); err != nil {
			return err
		}
	}
	for i, f := range files {
		if d.failAt != nil {
			err = d.failAt("rename", i)
		}
		if err == nil {
			err = unix.Renameat(d.fd(), temps[i], d.fd(), f.Name)
			if err != nil {
				err = fmt.Errorf("renaming %s into place: %w", f.Name, err)
			}
		}
		if err != nil {
			// Take back the files this run created. A file that replaced
			// one of an earlier attempt stays: the old content is gone, and
			// the new one is as good.
			for j := range i {
				if !existed[j] {
					_ = unix.Unlinkat(d.fd(), files[j].Name, 0)
				}
			}
			temps = temps[i:]
			return err
		}
	}
	temps = nil
	// On tmpfs this is a no-op; on a disk (--allow-non-tmpfs) it makes the
	// renames durable.
	if err := unix.Fsync(d.fd()); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("syncing directory %s: %w", d.path, err)
	}
	return nil
}

// checkDest reports whether name exists as a regular file, and fails if it
// exists as anything else. It never follows a symlink.
func (d *Dir) checkDest(name string) (exists bool, err error) {
	var st unix.Stat_t
	err = unix.Fstatat(d.fd(), name, &st, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case errors.Is(err, unix.ENOENT):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("checking %s in %s: %w", name, d.path, err)
	case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		return true, fmt.Errorf("%s in %s %w", name, d.path, ErrSymlink)
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return true, fmt.Errorf("%s in %s %w", name, d.path, ErrNotRegular)
	}
	return true, nil
}

// writeTemp writes f to a new temporary file and returns its name.
func (d *Dir) writeTemp(f File) (string, error) {
	var suffix [8]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return "", fmt.Errorf("choosing a temporary name: %w", err)
	}
	name := TempPrefix + f.Name + "-" + hex.EncodeToString(suffix[:])
	if err := createFile(d.fd(), name, f.Mode, f.Data); err != nil {
		return "", err
	}
	return name, nil
}

// createFile writes a new file named name in the directory dfd, for
// WriteAll's temporary files and WriteSet's data directories alike. O_EXCL:
// the name is new, never someone else's file. O_NOFOLLOW: a symlink at the
// name fails instead of being followed. The mode is set at creation, so no
// byte is ever in a file with looser permissions, and set again exactly
// before the first byte (the umask can only have removed bits: 0444 under
// umask 077 is 0400). Then the data, then fsync. A file it created and could
// not finish is removed.
func createFile(dfd int, name string, mode fs.FileMode, data []byte) error {
	perm := uint32(mode.Perm())
	fd, err := unix.Openat(dfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
	if err != nil {
		return fmt.Errorf("creating: %w", err)
	}
	file := os.NewFile(uintptr(fd), name)
	fail := func(err error) error {
		_ = file.Close()
		_ = unix.Unlinkat(dfd, name, 0)
		return err
	}
	if err := unix.Fchmod(fd, perm); err != nil {
		return fail(fmt.Errorf("setting mode %04o: %w", perm, err))
	}
	if _, err := file.Write(data); err != nil {
		return fail(fmt.Errorf("writing: %w", err))
	}
	if err := file.Sync(); err != nil {
		return fail(fmt.Errorf("syncing: %w", err))
	}
	if err := file.Close(); err != nil {
		_ = unix.Unlinkat(dfd, name, 0)
		return fmt.Errorf("closing: %w", err)
	}
	return nil
}

// removeStale removes the temporary files of an earlier attempt that was
// killed before it could clean up.
func (d *Dir) removeStale() error {
	// A second descriptor to list with, so the listing does not depend on
	// the read offset of d.f.
	fd, err := unix.Openat(d.fd(), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("listing %s: %w", d.path, err)
	}
	list := os.NewFile(uintptr(fd), d.path)
	defer list.Close()
	names, err := list.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("listing %s: %w", d.path, err)
	}
	for _, n := range names {
		if !strings.HasPrefix(n, TempPrefix) {
			continue
		}
		// unlinkat removes a symlink itself, never its target.
		if err := unix.Unlinkat(d.fd(), n, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("removing %s left in %s by an earlier attempt: %w", n, d.path, err)
		}
	}
	return nil
}

// ReadFile returns the content of the file name in the directory, which
// must be a regular file of this process's user no larger than limit bytes:
// a small file of the writer's own that WriteAll wrote, such as the refresh
// sidecar's restart marker. It never follows a symlink and never blocks on
// a FIFO. It refuses a file another user owns: in a sticky, world-writable
// directory (a memory emptyDir's root), anyone who mounts it could have
// planted one. A missing file is an error wrapping fs.ErrNotExist.
func (d *Dir) ReadFile(name string, limit int64) ([]byte, error) {
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("reading from %s: %w", d.path, err)
	}
	fd, err := unix.Openat(d.fd(), name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ELOOP) {
		return nil, fmt.Errorf("reading %s in %s: it %w", name, d.path, ErrSymlink)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s in %s: %w", name, d.path, err)
	}
	file := os.NewFile(uintptr(fd), name)
	defer file.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("reading %s in %s: %w", name, d.path, err)
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return nil, fmt.Errorf("reading %s in %s: it %w", name, d.path, ErrNotRegular)
	case st.Uid != uint32(os.Geteuid()):
		return nil, fmt.Errorf("reading %s in %s: it belongs to user %d, not to this one (%d): %w", name, d.path, st.Uid, os.Geteuid(), ErrForeign)
	case st.Size > limit:
		return nil, fmt.Errorf("reading %s in %s: %d bytes, more than the %d allowed", name, d.path, st.Size, limit)
	}
	data, err := io.ReadAll(io.LimitReader(file, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s in %s: %w", name, d.path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("reading %s in %s: more than the %d bytes allowed", name, d.path, limit)
	}
	return data, nil
}
