package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

const (
	valuesAuto = "auto"
	valuesShow = "show"
	valuesHide = "hide"
)

type options struct {
	dir    string
	once   bool
	json   bool
	values string
	// mounts is the mount table to read; empty means /proc/mounts.
	mounts string
	// env lists environment variables to show next to the files; lookup
	// reads them (os.LookupEnv when nil).
	env    envFlags
	lookup func(string) (string, bool)
}

// listing is what the app sees in its directory. The JSON names are the
// interface that the e2e suite reads through `demo-app --once --json`.
type listing struct {
	Dir        string `json:"dir"`
	MountPoint string `json:"mountPoint,omitempty"`
	FSType     string `json:"fsType,omitempty"`
	// Tmpfs is true for a memory-backed filesystem (tmpfs or ramfs), which is
	// what an emptyDir with medium Memory is.
	Tmpfs bool `json:"tmpfs"`
	// ReadOnly is true when the mount is read-only for this container.
	ReadOnly bool `json:"readOnly"`
	// Data is the data directory that ..data pointed to when the listing
	// read the files: every file of one listing comes from this one set.
	Data  string `json:"data,omitempty"`
	Files []file `json:"files"`
	// Env is the environment variables asked for with --env.
	Env []envVar `json:"env,omitempty"`
}

// dataLink is the symlink to the current set in secretfetch's layout (as in
// kubelet's ConfigMap volumes): each visible <name> links to ..data/<name>.
const dataLink = "..data"

type file struct {
	Name string `json:"name"`
	Type string `json:"type"` // "file", "dir", "symlink" or "other"
	// Mode is the permission bits in octal, e.g. "0400".
	Mode   string `json:"mode"`
	UID    int    `json:"uid"`
	GID    int    `json:"gid"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256,omitempty"`
	// Value is the content of a regular file, when values are shown. It is a
	// []byte so that JSON carries binary secrets intact (as base64).
	Value []byte `json:"value,omitempty"`
	// Error says why a file could not be read; the listing goes on.
	Error string `json:"error,omitempty"`
}

func run(ctx context.Context, o options, stdout io.Writer) error {
	var show bool
	switch o.values {
	case valuesAuto:
		// Once is for `kubectl exec`: its output goes to the caller. The
		// long-running mode writes to the container log, which holds no values.
		show = o.once
	case valuesShow:
		show = true
	case valuesHide:
	default:
		return fmt.Errorf("--values must be %s, %s or %s, got %q", valuesAuto, valuesShow, valuesHide, o.values)
	}
	mounts := o.mounts
	if mounts == "" {
		mounts = "/proc/mounts"
	}
	l, err := list(o.dir, mounts, show)
	if err != nil {
		return err
	}
	lookup := o.lookup
	if lookup == nil {
		lookup = os.LookupEnv
	}
	l.Env = listEnv(o.env, lookup, show)
	if o.json {
		enc := json.NewEncoder(stdout)
		if err := enc.Encode(l); err != nil {
			return fmt.Errorf("writing the listing: %w", err)
		}
	} else if err := printText(stdout, l); err != nil {
		return fmt.Errorf("writing the listing: %w", err)
	}
	if o.once {
		return nil
	}
	<-ctx.Done()
	return nil
}

// list reads dir and the mount that holds it.
func list(dir, mountsPath string, showValues bool) (listing, error) {
	l := listing{Dir: dir}
	// The mount table names the real path; /var/run, for one, is often a
	// symlink to /run.
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return l, fmt.Errorf("resolving %s: %w", dir, err)
	}
	mf, err := os.Open(mountsPath)
	if err != nil {
		return l, fmt.Errorf("reading the mount table: %w", err)
	}
	m, found, err := mountOf(mf, real)
	mf.Close()
	if err != nil {
		return l, fmt.Errorf("reading %s: %w", mountsPath, err)
	}
	if found {
		l.MountPoint, l.FSType = m.point, m.fstype
		l.Tmpfs = m.fstype == "tmpfs" || m.fstype == "ramfs"
		l.ReadOnly = slices.Contains(m.options, "ro")
	}
	// access(2) reports EROFS for a read-only mount even when the mount
	// table was not found or is stale.
	if err := syscall.Access(real, 2 /* W_OK */); errors.Is(err, syscall.EROFS) {
		l.ReadOnly = true
	}

	entries, err := os.ReadDir(dir)
	if err != nil {
		return l, fmt.Errorf("listing %s: %w", dir, err)
	}
	// ..data names the set the files come from. Each file is opened by its
	// own path, as an ordinary app opens it (the kernel follows <name> ->
	// ..data/<name>), so the listing shows what such an app can read. To
	// read several files as one set, an app resolves ..data once instead
	// (see --sample).
	if target, err := os.Readlink(filepath.Join(dir, dataLink)); err == nil && !strings.Contains(target, "/") {
		l.Data = target
	}
	l.Files = []file{}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, "..") {
			continue // the layout's own entries: ..data and the data directories
		}
		path := filepath.Join(dir, name)
		follow := false
		if target, err := os.Readlink(path); err == nil && target == dataLink+"/"+name {
			follow = true // the layout's link: described by what it opens
		}
		l.Files = append(l.Files, describe(path, name, follow, showValues))
	}
	return l, nil
}

// describe lists one entry. With follow, it describes what opening path
// gives (stat(2) and open(2) follow the layout's links); otherwise the entry
// itself, and a symlink of anybody else's is not followed.
func describe(path, name string, follow, showValue bool) file {
	f := file{Name: name}
	stat := os.Lstat
	if follow {
		stat = os.Stat
	}
	fi, err := stat(path)
	if err != nil {
		f.Error = err.Error()
		return f
	}
	f.Mode = fmt.Sprintf("%04o", fi.Mode().Perm())
	f.Size = fi.Size()
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		f.UID, f.GID = int(st.Uid), int(st.Gid)
	}
	switch {
	case fi.Mode().IsRegular():
		f.Type = "file"
	case fi.IsDir():
		f.Type = "dir"
		return f
	case fi.Mode()&fs.ModeSymlink != 0:
		f.Type = "symlink" // not followed: the secrets are regular files
		return f
	default:
		f.Type = "other"
		return f
	}
	data, err := os.ReadFile(path)
	if err != nil {
		f.Error = err.Error()
		return f
	}
	sum := sha256.Sum256(data)
	f.SHA256 = hex.EncodeToString(sum[:])
	if showValue {
		f.Value = data
	}
	return f
}

func printText(w io.Writer, l listing) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "dir=%s mountPoint=%s fsType=%s tmpfs=%t readOnly=%t files=%d\n",
		l.Dir, l.MountPoint, l.FSType, l.Tmpfs, l.ReadOnly, len(l.Files))
	for _, f := range l.Files {
		fmt.Fprintf(bw, "file=%s type=%s mode=%s uid=%d gid=%d size=%d", f.Name, f.Type, f.Mode, f.UID, f.GID, f.Size)
		if f.SHA256 != "" {
			fmt.Fprintf(bw, " sha256=%s", f.SHA256[:16])
		}
		if f.Value != nil {
			// Quoted, so a binary value cannot garble the terminal.
			fmt.Fprintf(bw, " value=%s", strconv.Quote(string(f.Value)))
		}
		if f.Error != "" {
			fmt.Fprintf(bw, " error=%q", f.Error)
		}
		fmt.Fprintln(bw)
	}
	for _, e := range l.Env {
		fmt.Fprintf(bw, "env=%s set=%t size=%d", e.Name, e.Set, e.Size)
		if e.SHA256 != "" {
			fmt.Fprintf(bw, " sha256=%s", e.SHA256[:16])
		}
		if e.Value != nil {
			fmt.Fprintf(bw, " value=%s", strconv.Quote(string(e.Value)))
		}
		fmt.Fprintln(bw)
	}
	return bw.Flush()
}

type mount struct {
	point   string
	fstype  string
	options []string
}

// mountOf finds the mount that holds path (already free of symlinks): the
// longest mount point that is path or a parent of it, and the last such entry
// when mounts are stacked, since a later mount hides an earlier one.
func mountOf(r io.Reader, path string) (mount, bool, error) {
	var best mount
	found := false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 {
			continue
		}
		point := unescapeMount(fields[1])
		if !within(path, point) {
			continue
		}
		if !found || len(point) >= len(best.point) {
			best = mount{point: point, fstype: fields[2], options: strings.Split(fields[3], ",")}
			found = true
		}
	}
	return best, found, sc.Err()
}

// within reports whether path is mount point p or lies under it.
func within(path, p string) bool {
	if p == "/" || path == p {
		return true
	}
	return strings.HasPrefix(path, p+"/")
}

// unescapeMount undoes the octal escapes (\040 for a space, and so on) that
// the kernel writes in /proc/mounts.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
