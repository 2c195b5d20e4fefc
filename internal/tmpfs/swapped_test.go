//go:build linux

package tmpfs

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteSetErrSwapped: an error after the rename of ..data says that the
// swap happened (errors.Is ErrSwapped), so that a caller can tell "the new
// files are in place, but cleanup failed" from "the current files are kept".
// Errors before the rename do not say so.
func TestWriteSetErrSwapped(t *testing.T) {
	dir := t.TempDir()
	d, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.WriteSet(Set{Files: []File{{Name: "a", Mode: 0o400, Data: []byte("old")}}}); err != nil {
		t.Fatal(err)
	}
	// A non-empty directory inside the current data directory: removing
	// the previous set after the swap fails on it, even for root.
	target, err := os.Readlink(filepath.Join(dir, DataLink))
	if err != nil {
		t.Fatal(err)
	}
	stuck := filepath.Join(dir, target, "stuck")
	if err := os.MkdirAll(stuck, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stuck, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}

	err = d.WriteSet(Set{Files: []File{{Name: "a", Mode: 0o400, Data: []byte("new")}}})
	if err == nil {
		t.Fatal("WriteSet succeeded although the previous data directory cannot be removed")
	}
	if !errors.Is(err, ErrSwapped) {
		t.Errorf("WriteSet = %v; want an error that wraps ErrSwapped", err)
	}
	if got := readSet(t, dir, "a"); got["a"] != "new" {
		t.Error("the new set is not in place after the swap")
	}

	// A failure before the rename is not ErrSwapped.
	if err := os.RemoveAll(stuck); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("injected failure")
	d.failAt = func(step string, _ int) error {
		if step == "swap" {
			return boom
		}
		return nil
	}
	err = d.WriteSet(Set{Files: []File{{Name: "a", Mode: 0o400, Data: []byte("newer")}}})
	if !errors.Is(err, boom) || errors.Is(err, ErrSwapped) {
		t.Errorf("WriteSet failing before the swap = %v; want the injected failure, not ErrSwapped", err)
	}
}
