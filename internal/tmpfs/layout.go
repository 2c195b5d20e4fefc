package tmpfs

import (
	"errors"
	"fmt"
	"strings"
)

// The atomic layout, as kubelet's AtomicWriter lays out ConfigMap and Secret
// volumes (k8s.io/kubernetes/pkg/volume/util/atomic_writer.go):
//
//	<dir>/..2026_12_01_04_06_29.1a2b3c4d/   the files of one set, made fresh
//	<dir>/..data -> ..2026_12_01_04_06_29.1a2b3c4d
//	<dir>/<name> -> ..data/<name>
//
// A new set is written in full into a fresh data directory, then ..data is
// switched to it with one rename(2) of a symlink made next to it. A reader
// that opens <name> sees either the old file or the new one, never a part of
// each; a reader that resolves ..data once sees one whole set. Apps that
// watch files can watch ..data.
const (
	// DataLink is the symlink to the current data directory.
	DataLink = "..data"
	// dataTmpLink is the symlink made next to DataLink and renamed over it.
	dataTmpLink = "..data_tmp"
	// dataDirPrefix starts every data directory's name; the rest is a UTC
	// timestamp and a random suffix, as in kubelet.
	dataDirPrefix = ".."
	// dataDirTime is the timestamp layout of a data directory's name.
	dataDirTime = "2006_01_02_15_04_05"
	// StateName is the hidden file in a data directory that WriteSet
	// stores Set.State in. It starts with "..", which no file name of a
	// plan can, and it gets no visible link.
	StateName = "..state"
)

// ErrForeign is returned by WriteSet when the directory holds something at a
// name of the layout (or at a file's name) that this package did not make: a
// symlink pointing anywhere else, or a file where a link belongs. It is
// refused rather than replaced, so that nothing another writer planted is
// followed or silently taken over.
var ErrForeign = errors.New("was not made by secretfetch; refusing to replace it")

// ErrShared is returned by OwnSubdir for a directory that others may write
// into or that another user owns: links laid out in it could not be trusted,
// or (sticky and world-writable) could not be followed by other users.
var ErrShared = errors.New("is not a directory of this user's own that only it can write to")

// Set is one complete set of files for WriteSet.
type Set struct {
	// Files are written into the new data directory.
	Files []File
	// Keep names files of the current set to carry over unchanged, by a hard
	// link into the new data directory: their values never pass through
	// this process again. Each must exist in the current set as a regular
	// file.
	Keep []string
	// State, when not nil, is stored as StateName in the new data
	// directory with mode 0400 (see ReadState). It must hold no secret.
	State []byte
}

// isDataDirName reports whether name has the shape of a data directory this
// package makes: ".." + timestamp + "." + 8 hex digits.
func isDataDirName(name string) bool {
	rest, ok := strings.CutPrefix(name, dataDirPrefix)
	if !ok || len(rest) != len(dataDirTime)+1+8 || rest[len(dataDirTime)] != '.' {
		return false
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		switch {
		case i < len(dataDirTime):
			if dataDirTime[i] == '_' {
				if c != '_' {
					return false
				}
			} else if c < '0' || c > '9' {
				return false
			}
		case i == len(dataDirTime):
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}

// checkSetName is checkName plus the layout's own names: a file name of a set
// may not start with "..".
func checkSetName(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if strings.HasPrefix(name, "..") {
		return fmt.Errorf("%q starts with \"..\", which is reserved for the layout (%s and the data directories)", name, DataLink)
	}
	return nil
}
