// Package tmpfs writes secret files into a memory-backed directory, all of
// them or none.
//
// OpenDir opens the directory once, refusing a symlink, and everything after
// that works relative to that descriptor (the *at system calls), so swapping
// the directory for a symlink after the check changes nothing.
// CheckMemoryBacked asks the kernel what file system the open directory is
// on. WriteAll writes every file to a temporary name in the same directory
// with its final mode set before the first byte, syncs it, and only when all
// are written renames them into place. It refuses a destination that is a
// symlink or anything but a regular file, and it never follows a symlink.
//
// WriteSet lays files out as kubelet's AtomicWriter does (see layout.go):
// a fresh hidden data directory per set, a ..data symlink swapped with one
// rename, and a visible link per file. init-fetch uses it in both of its
// modes, so that an app sees one layout whether or not refresh is on.
//
// Only Linux is supported; elsewhere OpenDir fails with ErrUnsupported.
package tmpfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// TempPrefix starts the name of every temporary file WriteAll creates. A
// failed run that was killed before it cleaned up leaves such files behind;
// the next WriteAll in the same directory removes them.
const TempPrefix = ".secretfetch-tmp-"

var (
	// ErrNotMemoryBacked is returned by CheckMemoryBacked for a directory on
	// any file system other than tmpfs or ramfs.
	ErrNotMemoryBacked = errors.New("the directory is not on a memory-backed file system (tmpfs or ramfs)")
	// ErrSymlink is returned when a path that is written to is a symlink.
	ErrSymlink = errors.New("is a symlink; refusing to follow it")
	// ErrNotRegular is returned when a destination exists and is not a
	// regular file (a directory, a device, a FIFO, a socket).
	ErrNotRegular = errors.New("exists and is not a regular file")
	// ErrUnsupported is returned on operating systems other than Linux.
	ErrUnsupported = errors.New("writing secrets is supported on Linux only")
	// ErrSwapped is wrapped by an error of WriteSet that came after the
	// swap: DataLink points to the new set, but a step that follows (a
	// new name's link, removing what the previous set left) failed. An app
	// that reads through DataLink sees the new files.
	ErrSwapped = errors.New("a step after the swap failed")
)

// File is one file for WriteAll.
type File struct {
	// Name is a plain file name inside the directory: no '/', not "." or
	// "..", and not starting with TempPrefix.
	Name string
	// Mode holds the permission bits the file gets, exactly (the umask does
	// not apply).
	Mode fs.FileMode
	// Data is written as is. WriteAll neither keeps nor copies it; the caller
	// zeroes it afterwards (see Zero).
	Data []byte
}

// Zero overwrites the data of every file with zeros.
//
// This is as far as Go lets a program go. The runtime may have copied a slice
// when it grew it, a string made from the bytes cannot be changed, and the
// garbage collector does not clear freed memory; none of those copies can be
// reached from here. Values live on the tmpfs afterwards anyway, so the
// point is to keep them out of the process's memory (and a core dump) once
// they are no longer needed, not to make them vanish.
func Zero(files []File) {
	for i := range files {
		clear(files[i].Data)
	}
}

// Dir is an open directory to write secrets into.
type Dir struct {
	path string
	f    *os.File

	// failAt, when set by a test, makes WriteAll fail at the named step
	// ("temp" after writing the i-th temporary file, "rename" before the
	// i-th rename) to exercise the clean-up.
	failAt func(step string, i int) error
}

// Path returns the path the directory was opened with.
func (d *Dir) Path() string { return d.path }

// Close closes the directory.
func (d *Dir) Close() error { return d.f.Close() }

// CheckMemoryBacked opens path and checks that it is on tmpfs or ramfs.
func CheckMemoryBacked(path string) error {
	d, err := OpenDir(path)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.CheckMemoryBacked()
}

// checkName rejects names that could leave the directory or clash with the
// temporary files. The plan package already allows only safe names; this is
// the last line, next to the system calls.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') || strings.ContainsRune(name, 0) {
		return fmt.Errorf("%q is not a plain file name", name)
	}
	if strings.HasPrefix(name, TempPrefix) {
		return fmt.Errorf("%q starts with %q, which is reserved for temporary files", name, TempPrefix)
	}
	return nil
}
