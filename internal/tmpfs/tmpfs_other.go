//go:build !linux

package tmpfs

import "fmt"

// OpenDir fails: the memory-backed check and the *at writes are written for
// Linux, where init-fetch runs. Refusing is safer than writing values with
// guarantees that were never checked.
func OpenDir(path string) (*Dir, error) {
	return nil, fmt.Errorf("opening directory %s: %w", path, ErrUnsupported)
}

// CheckMemoryBacked fails with ErrUnsupported.
func (d *Dir) CheckMemoryBacked() error { return ErrUnsupported }

// WriteAll fails with ErrUnsupported.
func (d *Dir) WriteAll([]File) error { return ErrUnsupported }

// ReadFile fails with ErrUnsupported.
func (d *Dir) ReadFile(string, int64) ([]byte, error) { return nil, ErrUnsupported }
