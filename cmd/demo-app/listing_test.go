package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMountOf(t *testing.T) {
	const table = `sysfs /sys sysfs ro,nosuid 0 0
overlay / overlay rw,relatime 0 0
tmpfs /run tmpfs rw,nosuid 0 0
tmpfs /run/secrets/app tmpfs rw,relatime,size=1024k 0 0
tmpfs /run/secrets/app tmpfs ro,relatime,size=1024k 0 0
tmpfs /run/secrets/application tmpfs rw 0 0
tmpfs /mnt/with\040space tmpfs ro 0 0
short line
`
	tests := []struct {
		path       string
		wantPoint  string
		wantFSType string
		wantRO     bool
	}{
		{"/run/secrets/app", "/run/secrets/app", "tmpfs", true}, // the later, stacked mount wins
		{"/run/secrets/app/sub", "/run/secrets/app", "tmpfs", true},
		{"/run/secrets", "/run", "tmpfs", false},
		{"/run/secrets/applications", "/run", "tmpfs", false}, // a prefix of a name is not a parent
		{"/etc", "/", "overlay", false},
		{"/mnt/with space/x", "/mnt/with space", "tmpfs", true},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			m, found, err := mountOf(strings.NewReader(table), tt.path)
			if err != nil || !found {
				t.Fatalf("mountOf = found %v, err %v", found, err)
			}
			ro := false
			for _, o := range m.options {
				ro = ro || o == "ro"
			}
			if m.point != tt.wantPoint || m.fstype != tt.wantFSType || ro != tt.wantRO {
				t.Errorf("mountOf = %s %s ro=%v, want %s %s ro=%v", m.point, m.fstype, ro, tt.wantPoint, tt.wantFSType, tt.wantRO)
			}
		})
	}
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	secrets := map[string]struct {
		data []byte
		mode os.FileMode
	}{
		"db":   {[]byte("demo-password"), 0o400},
		"blob": {[]byte{0, 1, 2, 0xff}, 0o440},
	}
	for name, s := range secrets {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, s.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, s.mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("db", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	mounts := filepath.Join(t.TempDir(), "mounts")
	table := "overlay / overlay rw 0 0\ntmpfs " + real + " tmpfs ro,relatime 0 0\n"
	if err := os.WriteFile(mounts, []byte(table), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		values     string
		wantValues bool
	}{
		{"auto with once shows values", valuesAuto, true},
		{"hide", valuesHide, false},
		{"show", valuesShow, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			o := options{dir: dir, once: true, json: true, values: tt.values, mounts: mounts}
			if err := run(context.Background(), o, &out); err != nil {
				t.Fatalf("run: %v", err)
			}
			var l listing
			if err := json.Unmarshal(out.Bytes(), &l); err != nil {
				t.Fatalf("decoding the JSON listing: %v", err)
			}
			if l.Dir != dir || l.MountPoint != real || l.FSType != "tmpfs" || !l.Tmpfs || !l.ReadOnly {
				t.Errorf("listing header = %+v, want dir %s on a read-only tmpfs at %s", l, dir, real)
			}
			if len(l.Files) != 4 {
				t.Fatalf("got %d entries, want 4", len(l.Files))
			}
			byName := map[string]file{}
			for _, f := range l.Files {
				byName[f.Name] = f
			}
			for name, s := range secrets {
				f := byName[name]
				wantMode := map[os.FileMode]string{0o400: "0400", 0o440: "0440"}[s.mode]
				if f.Type != "file" || f.Mode != wantMode || f.Size != int64(len(s.data)) ||
					f.UID != os.Getuid() || f.GID != os.Getgid() {
					t.Errorf("%s = type %s mode %s size %d uid %d gid %d, want file %s %d %d %d",
						name, f.Type, f.Mode, f.Size, f.UID, f.GID, wantMode, len(s.data), os.Getuid(), os.Getgid())
				}
				if tt.wantValues != bytes.Equal(f.Value, s.data) {
					t.Errorf("%s: value shown = %v (%d bytes), want shown = %v", name, f.Value != nil, len(f.Value), tt.wantValues)
				}
				if !tt.wantValues && f.Value != nil {
					t.Errorf("%s: value present with --values=%s", name, tt.values)
				}
				if len(f.SHA256) != 64 {
					t.Errorf("%s: sha256 = %q, want 64 hex digits", name, f.SHA256)
				}
			}
			if f := byName["sub"]; f.Type != "dir" || f.Value != nil {
				t.Errorf("sub = %+v, want a dir without value", f)
			}
			if f := byName["link"]; f.Type != "symlink" || f.Value != nil {
				t.Errorf("link = type %s, value %v; want a symlink, not followed", f.Type, f.Value != nil)
			}
		})
	}

	t.Run("text output of the long-running mode has no values", func(t *testing.T) {
		var out bytes.Buffer
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // as if SIGTERM arrived: run returns after listing
		o := options{dir: dir, values: valuesAuto, mounts: mounts}
		if err := run(ctx, o, &out); err != nil {
			t.Fatalf("run: %v", err)
		}
		text := out.String()
		if strings.Contains(text, "demo-password") || strings.Contains(text, "value=") {
			t.Errorf("the log listing carries a value (%d bytes of output)", len(text))
		}
		for _, want := range []string{"tmpfs=true", "readOnly=true", "file=db type=file mode=0400", "file=blob type=file mode=0440"} {
			if !strings.Contains(text, want) {
				t.Errorf("text listing lacks %q:\n%s", want, text)
			}
		}
	})

	t.Run("text output with values quotes binary", func(t *testing.T) {
		var out bytes.Buffer
		o := options{dir: dir, once: true, values: valuesShow, mounts: mounts}
		if err := run(context.Background(), o, &out); err != nil {
			t.Fatalf("run: %v", err)
		}
		for _, want := range []string{`value="demo-password"`, `value="\x00\x01\x02\xff"`} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("text listing lacks %s", want)
			}
		}
	})
}

func TestRunErrors(t *testing.T) {
	tests := []struct {
		name string
		o    options
	}{
		{"bad --values", options{dir: t.TempDir(), once: true, values: "yes"}},
		{"missing dir", options{dir: filepath.Join(t.TempDir(), "absent"), once: true, values: valuesAuto}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := run(context.Background(), tt.o, &bytes.Buffer{}); err == nil {
				t.Error("run succeeded, want an error")
			}
		})
	}
}

// TestListLayout: in secretfetch's ..data layout the listing shows each
// visible name as the file it links to, read through one resolution of
// ..data, and leaves out the layout's own entries.
func TestListLayout(t *testing.T) {
	dir := t.TempDir()
	data := "..2026_12_01_04_06_29.1a2b3c4d"
	if err := os.Mkdir(filepath.Join(dir, data), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, data, "db"), []byte("pw"), 0o400); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"..data": data, "db": "..data/db", "other": "/etc/hostname"} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	l, err := list(dir, filepath.Join(t.TempDir(), "no-mounts"), true)
	if err == nil {
		t.Fatal("list read a missing mount table")
	}
	mounts := filepath.Join(t.TempDir(), "mounts")
	if err := os.WriteFile(mounts, []byte("overlay / overlay rw 0 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if l, err = list(dir, mounts, true); err != nil {
		t.Fatal(err)
	}
	if l.Data != data || len(l.Files) != 2 {
		t.Fatalf("listing %+v, want data %s and two entries", l, data)
	}
	byName := map[string]file{}
	for _, f := range l.Files {
		byName[f.Name] = f
	}
	if f := byName["db"]; f.Type != "file" || f.Mode != "0400" || string(f.Value) != "pw" {
		t.Errorf("db = %+v, want the 0400 file it links to", f)
	}
	if f := byName["other"]; f.Type != "symlink" {
		t.Errorf("a link elsewhere = %+v, want it listed as a symlink, not followed", f)
	}
}

func TestSample(t *testing.T) {
	dir := t.TempDir()
	data := "..2026_12_01_04_06_29.1a2b3c4d"
	if err := os.Mkdir(filepath.Join(dir, data), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{"user": "u1", "pass": "p1", "..state": "{}"} {
		if err := os.WriteFile(filepath.Join(dir, data, name), []byte(v), 0o400); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(data, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := sample(dir, 20*1000*1000, &out); err != nil { // 20ms
		t.Fatal(err)
	}
	var s sampling
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	if s.Samples == 0 || s.Errors != 0 || len(s.Sets) != 1 || s.Sets[0].Count != s.Samples || len(s.Sets[0].SHA256) != 2 {
		t.Fatalf("sampling %+v, want one set of two files in every sample", s)
	}
	if strings.Contains(out.String(), "u1") || strings.Contains(out.String(), "p1") {
		t.Error("the sampling shows a value")
	}
}

func TestListenNotify(t *testing.T) {
	if err := listenNotify(context.Background(), "0.0.0.0:0", io.Discard); err == nil {
		t.Error("listenNotify served a non-loopback address")
	}
	ctx, cancel := context.WithCancel(context.Background())
	port := freeLoopbackPort(t)
	var mu sync.Mutex
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- listenNotify(ctx, port, lockedWriter{&mu, &out}) }()
	var resp *http.Response
	var err error
	for range 100 {
		if resp, err = http.Post("http://"+port+"/reload", "application/json", strings.NewReader(`{"files":[]}`)); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := out.String(); got != `notify: POST /reload "{\"files\":[]}"`+"\n" {
		t.Errorf("logged %q", got)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func freeLoopbackPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestRunEnv(t *testing.T) {
	dir := t.TempDir()
	mounts := filepath.Join(t.TempDir(), "mounts")
	if err := os.WriteFile(mounts, []byte("overlay / overlay rw 0 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lookup := func(k string) (string, bool) {
		v, ok := map[string]string{"DB_PASSWORD": "env-password\nline 2"}[k]
		return v, ok
	}
	base := options{dir: dir, mounts: mounts, env: envFlags{"DB_PASSWORD", "MISSING"}, lookup: lookup}

	t.Run("log listing: name, size and hash, no value", func(t *testing.T) {
		var out bytes.Buffer
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		o := base
		o.values = valuesAuto
		if err := run(ctx, o, &out); err != nil {
			t.Fatalf("run: %v", err)
		}
		text := out.String()
		if strings.Contains(text, "env-password") || strings.Contains(text, "value=") {
			t.Errorf("the log listing carries a value (%d bytes of output)", len(text))
		}
		// sha256("env-password\nline 2"), first 16 hex digits.
		for _, want := range []string{"env=DB_PASSWORD set=true size=19 sha256=", "env=MISSING set=false size=0\n"} {
			if !strings.Contains(text, want) {
				t.Errorf("text listing lacks %q:\n%s", want, text)
			}
		}
	})
	t.Run("once: the value", func(t *testing.T) {
		var out bytes.Buffer
		o := base
		o.values, o.once, o.json = valuesAuto, true, true
		if err := run(context.Background(), o, &out); err != nil {
			t.Fatalf("run: %v", err)
		}
		var l listing
		if err := json.Unmarshal(out.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		if len(l.Env) != 2 || l.Env[0].Name != "DB_PASSWORD" || string(l.Env[0].Value) != "env-password\nline 2" ||
			len(l.Env[0].SHA256) != 64 || l.Env[1].Set || l.Env[1].Value != nil {
			t.Errorf("env listing = %+v", l.Env)
		}
	})
}

// TestProcessEnv reads another process's environment as /proc shows it:
// NUL-separated NAME=value entries, values with '=' and new lines intact.
func TestProcessEnv(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "7"), 0o755); err != nil {
		t.Fatal(err)
	}
	environ := "PATH=/bin\x00DB_PASSWORD=a=b\nc\x00EMPTY=\x00"
	if err := os.WriteFile(filepath.Join(root, "7", "environ"), []byte(environ), 0o400); err != nil {
		t.Fatal(err)
	}
	lookup, err := processEnv(root, 7)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, want string
		ok         bool
	}{{"DB_PASSWORD", "a=b\nc", true}, {"EMPTY", "", true}, {"PATH", "/bin", true}, {"MISSING", "", false}} {
		if got, ok := lookup(tt.name); got != tt.want || ok != tt.ok {
			t.Errorf("%s: got %d bytes (set %v), want %d bytes (set %v)", tt.name, len(got), ok, len(tt.want), tt.ok)
		}
	}
	if _, err := processEnv(root, 8); err == nil {
		t.Error("a missing process gave no error")
	}
}
