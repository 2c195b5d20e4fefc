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
	"time"

	"golang.org/x/sys/unix"
)

// maxState bounds what ReadState reads; a real state is a few KiB.
const maxState = 1 << 20

// dataDirMode is a data directory's mode. File names are not secret (they
// are in the pod spec); the files keep their own modes. A set-group-ID bit
// that the directory inherited (fsGroup) is kept, so that files in it get
// the volume's group as they would at the top.
const dataDirMode = 0o755

// ownSubdirMode is the mode of OwnSubdir's directory: everyone may look up
// the names in it (the files keep their own modes), only its owner may
// change it. A set-group-ID bit inherited from the volume (fsGroup) is kept.
const ownSubdirMode = 0o755

// OwnSubdir makes the directory name inside d, or opens the one an earlier
// run made, and returns it for WriteSet. It must belong to this process's
// user and be writable by it alone: neither group- or world-writable nor
// sticky. The kubelet makes a memory emptyDir's root sticky and
// world-writable (1777, or 3777 with fsGroup), and with
// fs.protected_symlinks=1 the kernel lets only a link's owner follow a link
// that sits in such a directory; one level down, in a directory of its own,
// every reader that a file's mode admits can open <name>.
//
// The directory itself is never replaced, because the app containers mount
// it by name (a subPath, which the kubelet binds once, at container start).
func (d *Dir) OwnSubdir(name string) (*Dir, error) {
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("making the layout directory in %s: %w", d.path, err)
	}
	path := d.path + "/" + name
	err := unix.Mkdirat(d.fd(), name, 0o700)
	made := err == nil
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("making the layout directory %s: %w", path, err)
	}
	fd, err := unix.Openat(d.fd(), name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			return nil, fmt.Errorf("opening the layout directory %s: it is a symlink or not a directory: %w", path, ErrForeign)
		}
		return nil, fmt.Errorf("opening the layout directory %s: %w", path, err)
	}
	sub := &Dir{path: path, f: os.NewFile(uintptr(fd), path), failAt: d.failAt}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		sub.Close()
		return nil, fmt.Errorf("checking the layout directory %s: %w", path, err)
	}
	if made {
		// Made 0700, as data directories are, then opened up while empty.
		if err := unix.Fchmod(fd, ownSubdirMode|(st.Mode&unix.S_ISGID)); err != nil {
			sub.Close()
			return nil, fmt.Errorf("setting the mode of the layout directory %s: %w", path, err)
		}
		st.Mode = st.Mode&^0o7777 | ownSubdirMode | (st.Mode & unix.S_ISGID)
	}
	if uid := uint32(os.Geteuid()); st.Uid != uid || st.Mode&(unix.S_IWGRP|unix.S_IWOTH|unix.S_ISVTX) != 0 {
		sub.Close()
		return nil, fmt.Errorf("the layout directory %s (owner %d, mode %04o, want owner %d and mode %04o) %w; "+
			"a container that mounts it may have started before secretfetch-init made it: secretfetch-init must be the first container to run",
			path, st.Uid, st.Mode&0o7777, uid, ownSubdirMode, ErrShared)
	}
	return sub, nil
}

// SharedWritable reports whether others can write into the directory and it
// is sticky, as /tmp and a memory emptyDir's root are: links of the layout
// that sit there can be followed only by their owner under
// fs.protected_symlinks=1.
func (d *Dir) SharedWritable() (bool, error) {
	var st unix.Stat_t
	if err := unix.Fstat(d.fd(), &st); err != nil {
		return false, fmt.Errorf("checking %s: %w", d.path, err)
	}
	return st.Mode&unix.S_ISVTX != 0 && st.Mode&unix.S_IWOTH != 0, nil
}

// WriteSet lays out s as the directory's one current set, atomically: every
// file is written in full into a fresh data directory (mode set before the
// first byte, synced), the kept files are linked in beside them, and only
// then is DataLink switched to it with one rename(2). Readers see the whole
// old set or the whole new one. Each file name then gets its visible link
// <name> -> ..data/<name>; links of names no longer in the set and the old
// data directory are removed.
//
// If anything fails before the rename, the new data directory is removed and
// the current set is untouched. If the process dies before the rename, the
// current set is still whole and readable, and the next WriteSet removes what
// was left behind (as it does temporary files of WriteAll).
//
// It refuses (ErrSymlink, ErrForeign) any symlink in the directory that it
// did not make, and anything but its own link at a file's name, and never
// follows a symlink it did not check.
func (d *Dir) WriteSet(s Set) error {
	names, err := checkSet(s)
	if err != nil {
		return fmt.Errorf("writing into %s: %w", d.path, err)
	}
	cur, err := d.scan(names)
	if err != nil {
		return err
	}
	if len(s.Keep) > 0 && cur.data == "" {
		return fmt.Errorf("writing into %s: %d file(s) to keep, but there is no current set", d.path, len(s.Keep))
	}
	for _, stale := range cur.stale {
		if err := d.removeEntry(stale); err != nil {
			return fmt.Errorf("removing %s left in %s by an earlier run: %w", stale, d.path, err)
		}
	}

	newDir, ndir, err := d.makeDataDir()
	if err != nil {
		return err
	}
	defer ndir.Close()
	// abort takes back the new data directory. It is called on each error
	// path before the rename, not deferred, so that a crash (a test panics
	// to stand in for one) leaves exactly what a killed process would.
	abort := func(err error) error {
		_ = unix.Unlinkat(d.fd(), dataTmpLink, 0)
		_ = d.removeDataDir(newDir)
		return err
	}
	nfd := int(ndir.Fd())
	for i, f := range s.Files {
		if err := createFile(nfd, f.Name, f.Mode, f.Data); err != nil {
			return abort(fmt.Errorf("writing %s: %w", f.Name, err))
		}
		if d.failAt != nil {
			if err := d.failAt("file", i); err != nil {
				return abort(err)
			}
		}
	}
	if len(s.Keep) > 0 {
		if err := d.linkKept(cur.data, nfd, s.Keep); err != nil {
			return abort(err)
		}
	}
	if s.State != nil {
		if err := createFile(nfd, StateName, 0o400, s.State); err != nil {
			return abort(fmt.Errorf("writing %s: %w", StateName, err))
		}
	}
	if err := unix.Fsync(nfd); err != nil && !errors.Is(err, unix.EINVAL) {
		return abort(fmt.Errorf("syncing %s: %w", newDir, err))
	}

	if err := unix.Symlinkat(newDir, d.fd(), dataTmpLink); err != nil {
		return abort(fmt.Errorf("linking %s to %s: %w", dataTmpLink, newDir, err))
	}
	if d.failAt != nil {
		if err := d.failAt("swap", 0); err != nil {
			return abort(err)
		}
	}
	if err := unix.Renameat(d.fd(), dataTmpLink, d.fd(), DataLink); err != nil {
		return abort(fmt.Errorf("switching %s to %s: %w", DataLink, newDir, err))
	}

	// The new set is in place. What follows makes new names visible and
	// cleans up; its errors are reported, but the swap stands.
	var errs []error
	for name := range names {
		if cur.links[name] {
			continue
		}
		if err := unix.Symlinkat(DataLink+"/"+name, d.fd(), name); err != nil {
			errs = append(errs, fmt.Errorf("linking %s: %w", name, err))
		}
	}
	for name := range cur.links {
		if !names[name] {
			if err := unix.Unlinkat(d.fd(), name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("removing the link of %s, no longer in the set: %w", name, err))
			}
		}
	}
	if cur.data != "" {
		if err := d.removeDataDir(cur.data); err != nil {
			errs = append(errs, fmt.Errorf("removing the previous data directory %s: %w", cur.data, err))
		}
	}
	if err := unix.Fsync(d.fd()); err != nil && !errors.Is(err, unix.EINVAL) {
		errs = append(errs, fmt.Errorf("syncing directory %s: %w", d.path, err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %s in %s now points to the new set, but: %w", ErrSwapped, DataLink, d.path, err)
	}
	return nil
}

// checkSet checks the names and modes of s and returns the set of visible
// names.
func checkSet(s Set) (map[string]bool, error) {
	names := make(map[string]bool, len(s.Files)+len(s.Keep))
	add := func(name string) error {
		if err := checkSetName(name); err != nil {
			return err
		}
		if names[name] {
			return fmt.Errorf("%q is given twice", name)
		}
		names[name] = true
		return nil
	}
	for _, f := range s.Files {
		if err := add(f.Name); err != nil {
			return nil, err
		}
		if f.Mode&^fs.ModePerm != 0 {
			return nil, fmt.Errorf("%s: mode %v is not a plain permission", f.Name, f.Mode)
		}
	}
	for _, name := range s.Keep {
		if err := add(name); err != nil {
			return nil, err
		}
	}
	return names, nil
}

// current is what scan found.
type current struct {
	data  string          // the data directory DataLink points to, or ""
	links map[string]bool // visible links of ours, by name
	stale []string        // left by an earlier run: to remove
}

// scan reads the directory and sorts every entry into the layout. It fails
// on a symlink this package did not make, anywhere in the directory, and on
// anything but its own link at one of names.
func (d *Dir) scan(names map[string]bool) (*current, error) {
	entries, err := d.list()
	if err != nil {
		return nil, err
	}
	cur := &current{links: map[string]bool{}}
	var dataDirs []string
	for _, name := range entries {
		var st unix.Stat_t
		if err := unix.Fstatat(d.fd(), name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return nil, fmt.Errorf("checking %s in %s: %w", name, d.path, err)
		}
		kind := st.Mode & unix.S_IFMT
		switch {
		case name == DataLink || name == dataTmpLink:
			target, err := d.readlink(name, kind)
			if err != nil {
				return nil, err
			}
			if !isDataDirName(target) {
				return nil, fmt.Errorf("%s in %s points to %q: %w", name, d.path, target, errors.Join(ErrSymlink, ErrForeign))
			}
			if name == DataLink {
				cur.data = target
			} else {
				cur.stale = append(cur.stale, name)
			}
		case isDataDirName(name):
			if kind != unix.S_IFDIR {
				return nil, fmt.Errorf("%s in %s has the name of a data directory but is not a directory: %w", name, d.path, ErrForeign)
			}
			dataDirs = append(dataDirs, name)
		case strings.HasPrefix(name, TempPrefix):
			cur.stale = append(cur.stale, name)
		case kind == unix.S_IFLNK:
			target, err := d.readlink(name, kind)
			if err != nil {
				return nil, err
			}
			if target != DataLink+"/"+name {
				return nil, fmt.Errorf("%s in %s points to %q %w", name, d.path, target, ErrSymlink)
			}
			cur.links[name] = true
		case names[name]:
			return nil, fmt.Errorf("%s in %s is a file, not the link to %s/%s that secretfetch makes: %w", name, d.path, DataLink, name, ErrForeign)
		}
	}
	if cur.data != "" {
		var st unix.Stat_t
		err := unix.Fstatat(d.fd(), cur.data, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return nil, fmt.Errorf("%s in %s points to %s, which is not a data directory: %w", DataLink, d.path, cur.data, ErrForeign)
		}
	}
	for _, dir := range dataDirs {
		if dir != cur.data {
			cur.stale = append(cur.stale, dir)
		}
	}
	return cur, nil
}

// readlink reads the symlink name, which must be one (kind from its lstat).
func (d *Dir) readlink(name string, kind uint32) (string, error) {
	if kind != unix.S_IFLNK {
		return "", fmt.Errorf("%s in %s is not a symlink: %w", name, d.path, ErrForeign)
	}
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(d.fd(), name, buf)
	if err != nil {
		return "", fmt.Errorf("reading the link %s in %s: %w", name, d.path, err)
	}
	return string(buf[:n]), nil
}

// list returns the names in the directory.
func (d *Dir) list() ([]string, error) {
	// A second descriptor to list with, so the listing does not depend on
	// the read offset of d.f.
	fd, err := unix.Openat(d.fd(), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", d.path, err)
	}
	list := os.NewFile(uintptr(fd), d.path)
	defer list.Close()
	names, err := list.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", d.path, err)
	}
	return names, nil
}

// removeEntry removes a stale entry: a data directory with its files, or a
// link or temporary file (unlinkat removes a symlink itself, never its
// target).
func (d *Dir) removeEntry(name string) error {
	if isDataDirName(name) {
		return d.removeDataDir(name)
	}
	if err := unix.Unlinkat(d.fd(), name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	return nil
}

// makeDataDir makes a fresh, empty data directory and opens it.
func (d *Dir) makeDataDir() (string, *os.File, error) {
	var suffix [4]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return "", nil, fmt.Errorf("choosing a data directory name: %w", err)
	}
	name := dataDirPrefix + time.Now().UTC().Format(dataDirTime) + "." + hex.EncodeToString(suffix[:])
	if err := unix.Mkdirat(d.fd(), name, 0o700); err != nil {
		return "", nil, fmt.Errorf("making the data directory %s in %s: %w", name, d.path, err)
	}
	fd, err := unix.Openat(d.fd(), name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		_ = unix.Unlinkat(d.fd(), name, unix.AT_REMOVEDIR)
		return "", nil, fmt.Errorf("opening the data directory %s in %s: %w", name, d.path, err)
	}
	dir := os.NewFile(uintptr(fd), name)
	var st unix.Stat_t
	err = unix.Fstat(fd, &st)
	if err == nil {
		// Made 0700 so that nobody sees it half-built; opened up now, still
		// empty.
		err = unix.Fchmod(fd, dataDirMode|(st.Mode&unix.S_ISGID))
	}
	if err != nil {
		dir.Close()
		_ = unix.Unlinkat(d.fd(), name, unix.AT_REMOVEDIR)
		return "", nil, fmt.Errorf("setting the mode of the data directory %s in %s: %w", name, d.path, err)
	}
	return name, dir, nil
}

// linkKept hard-links the kept files of the current data directory into the
// new one. Each must be a regular file there.
func (d *Dir) linkKept(curDir string, nfd int, keep []string) error {
	cfd, err := unix.Openat(d.fd(), curDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening the current data directory %s: %w", curDir, err)
	}
	defer unix.Close(cfd)
	for _, name := range keep {
		var st unix.Stat_t
		if err := unix.Fstatat(cfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("keeping %s: %w", name, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			return fmt.Errorf("keeping %s: %w", name, ErrNotRegular)
		}
		// Without AT_SYMLINK_FOLLOW, linkat never follows a symlink.
		if err := unix.Linkat(cfd, name, nfd, name, 0); err != nil {
			return fmt.Errorf("keeping %s: %w", name, err)
		}
	}
	return nil
}

// removeDataDir removes a data directory and the files in it. It holds only
// what WriteSet put there: regular files.
func (d *Dir) removeDataDir(name string) error {
	fd, err := unix.Openat(d.fd(), name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	dir := os.NewFile(uintptr(fd), name)
	entries, err := dir.Readdirnames(-1)
	if err != nil {
		dir.Close()
		return err
	}
	for _, e := range entries {
		if err := unix.Unlinkat(fd, e, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			dir.Close()
			return fmt.Errorf("removing %s/%s: %w", name, e, err)
		}
	}
	dir.Close()
	if err := unix.Unlinkat(d.fd(), name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	return nil
}

// ReadState returns the State stored with the current set, or an error
// wrapping fs.ErrNotExist when there is no current set or it has no state. It
// follows only DataLink, and only after checking that it points to a data
// directory.
func (d *Dir) ReadState() ([]byte, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(d.fd(), DataLink, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, fmt.Errorf("reading the state in %s: %w", d.path, err)
	}
	target, err := d.readlink(DataLink, st.Mode&unix.S_IFMT)
	if err != nil {
		return nil, err
	}
	if !isDataDirName(target) {
		return nil, fmt.Errorf("%s in %s points to %q: %w", DataLink, d.path, target, errors.Join(ErrSymlink, ErrForeign))
	}
	dfd, err := unix.Openat(d.fd(), target, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("reading the state in %s: %w", d.path, err)
	}
	defer unix.Close(dfd)
	fd, err := unix.Openat(dfd, StateName, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("reading the state in %s: %w", d.path, err)
	}
	file := os.NewFile(uintptr(fd), StateName)
	defer file.Close()
	data, err := io.ReadAll(io.LimitReader(file, maxState+1))
	if err != nil {
		return nil, fmt.Errorf("reading the state in %s: %w", d.path, err)
	}
	if len(data) > maxState {
		return nil, fmt.Errorf("reading the state in %s: larger than %d bytes", d.path, maxState)
	}
	return data, nil
}
