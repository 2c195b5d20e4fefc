//go:build !linux

package tmpfs

// WriteSet fails with ErrUnsupported.
func (d *Dir) WriteSet(Set) error { return ErrUnsupported }

// ReadState fails with ErrUnsupported.
func (d *Dir) ReadState() ([]byte, error) { return nil, ErrUnsupported }

// OwnSubdir fails with ErrUnsupported.
func (d *Dir) OwnSubdir(string) (*Dir, error) { return nil, ErrUnsupported }

// SharedWritable fails with ErrUnsupported.
func (d *Dir) SharedWritable() (bool, error) { return false, ErrUnsupported }
