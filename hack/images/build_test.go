package main

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestBuild builds the demo-app and pause images for real (go build
// included) and checks what ctr will import.
func TestBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries; skipped with -short")
	}
	ca := []byte("-----BEGIN CERTIFICATE-----\nnot really\n-----END CERTIFICATE-----\n")
	caFile := filepath.Join(t.TempDir(), "ca-certificates.crt")
	if err := os.WriteFile(caFile, ca, 0o644); err != nil {
		t.Fatal(err)
	}
	epoch := time.Unix(1700000000, 0).UTC()
	build := func(out string) map[string]entry {
		t.Helper()
		var stdout, stderr bytes.Buffer
		o := options{out: out, tag: "test", arch: runtime.GOARCH, caFile: caFile, names: []string{"pause", "demo-app"}, epoch: epoch}
		if err := run(context.Background(), o, &stdout, &stderr); err != nil {
			t.Fatalf("run: %v\n%s", err, stderr.String())
		}
		index, err := readIndex(filepath.Join(out, indexFile))
		if err != nil {
			t.Fatal(err)
		}
		return index
	}
	out := t.TempDir()
	index := build(out)

	tests := []struct {
		name string
		ref  string
	}{
		{"demo-app", "secretfetch.local/demo-app:test"},
		{"pause", "secretfetch.local/pause:3.10"},
	}
	if len(index) != len(tests) {
		t.Errorf("images.json has %d entries, want %d", len(index), len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, ok := index[tt.name]
			if !ok {
				t.Fatalf("images.json lacks %s", tt.name)
			}
			if e.Ref != tt.ref {
				t.Errorf("ref = %q, want %q", e.Ref, tt.ref)
			}
			tag, err := name.NewTag(tt.ref)
			if err != nil {
				t.Fatal(err)
			}
			img, err := tarball.ImageFromPath(filepath.Join(out, e.File), &tag)
			if err != nil {
				t.Fatalf("loading %s: %v", e.File, err)
			}
			digest, err := img.Digest()
			if err != nil {
				t.Fatal(err)
			}
			id, err := img.ConfigName()
			if err != nil {
				t.Fatal(err)
			}
			if digest.String() != e.Digest || id.String() != e.ImageID {
				t.Errorf("tarball digest %s id %s, images.json says %s %s", digest, id, e.Digest, e.ImageID)
			}

			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cf.Config.User != "65532:65532" {
				t.Errorf("user = %q, want 65532:65532", cf.Config.User)
			}
			if len(cf.Config.Entrypoint) != 1 || cf.Config.Entrypoint[0] != "/"+tt.name {
				t.Errorf("entrypoint = %q, want [/%s]", cf.Config.Entrypoint, tt.name)
			}
			if cf.OS != "linux" || cf.Architecture != runtime.GOARCH {
				t.Errorf("platform = %s/%s, want linux/%s", cf.OS, cf.Architecture, runtime.GOARCH)
			}
			if !cf.Created.Time.Equal(epoch) {
				t.Errorf("created = %v, want %v", cf.Created.Time, epoch)
			}

			layers, err := img.Layers()
			if err != nil {
				t.Fatal(err)
			}
			if len(layers) != 1 {
				t.Fatalf("%d layers, want 1", len(layers))
			}
			files := readLayer(t, layers[0], epoch)
			wantFiles := map[string]int64{
				"etc/":                              0o755,
				"etc/group":                         0o644,
				"etc/passwd":                        0o644,
				"etc/ssl/":                          0o755,
				"etc/ssl/certs/":                    0o755,
				"etc/ssl/certs/ca-certificates.crt": 0o644,
				tt.name:                             0o755,
			}
			if len(files) != len(wantFiles) {
				names := make([]string, 0, len(files))
				for n := range files {
					names = append(names, n)
				}
				t.Errorf("layer holds %q, want exactly %d entries (no /tmp, no shell)", names, len(wantFiles))
			}
			for p, mode := range wantFiles {
				f, ok := files[p]
				if !ok {
					t.Errorf("layer lacks %s", p)
					continue
				}
				if f.hdr.Mode != mode || f.hdr.Uid != 0 || f.hdr.Gid != 0 {
					t.Errorf("%s: mode %o owner %d:%d, want %o root-owned", p, f.hdr.Mode, f.hdr.Uid, f.hdr.Gid, mode)
				}
			}
			if !bytes.Contains(files["etc/passwd"].data, []byte("\nnonroot:x:65532:65532:")) {
				t.Errorf("/etc/passwd has no nonroot 65532 entry:\n%s", files["etc/passwd"].data)
			}
			if !bytes.Contains(files["etc/group"].data, []byte("\nnonroot:x:65532:")) {
				t.Errorf("/etc/group has no nonroot 65532 entry:\n%s", files["etc/group"].data)
			}
			if !bytes.Equal(files["etc/ssl/certs/ca-certificates.crt"].data, ca) {
				t.Error("the CA bundle in the image differs from the host's")
			}
			checkStatic(t, files[tt.name].data)
			if tt.name == "pause" {
				checkPause(t, files[tt.name].data)
			}
		})
	}

	t.Run("reproducible", func(t *testing.T) {
		again := build(t.TempDir())
		for n, e := range index {
			if again[n].Digest != e.Digest {
				t.Errorf("%s: second build gave %s, first %s", n, again[n].Digest, e.Digest)
			}
		}
	})
}

func TestChoose(t *testing.T) {
	tests := []struct {
		names   []string
		want    []string
		wantErr bool
	}{
		{nil, []string{"webhook", "init-fetch", "fake-secretsmanager", "demo-app", "pause", "e2e-irsa-webhook"}, false},
		{[]string{"pause", "webhook"}, []string{"webhook", "pause"}, false},
		{[]string{"webhok"}, nil, true},
	}
	for _, tt := range tests {
		got, err := choose(tt.names)
		if (err != nil) != tt.wantErr {
			t.Errorf("choose(%q) error = %v, want error %v", tt.names, err, tt.wantErr)
			continue
		}
		var names []string
		for _, s := range got {
			names = append(names, s.name)
		}
		if !slices.Equal(names, tt.want) {
			t.Errorf("choose(%q) = %q, want %q", tt.names, names, tt.want)
		}
	}
}

type layerFile struct {
	hdr  *tar.Header
	data []byte
}

func readLayer(t *testing.T, l interface {
	Uncompressed() (io.ReadCloser, error)
}, epoch time.Time) map[string]layerFile {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]layerFile{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if !h.ModTime.Equal(epoch) {
			t.Errorf("%s: mtime %v, want %v", h.Name, h.ModTime, epoch)
		}
		files[h.Name] = layerFile{hdr: h, data: data}
	}
	return files
}

// checkStatic fails unless the binary is a statically linked ELF executable
// (no program interpreter), since the image has no libc.
func checkStatic(t *testing.T, bin []byte) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		t.Fatalf("the binary is not ELF: %v", err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary is dynamically linked (has PT_INTERP)")
		}
	}
}

// checkPause runs the pause binary and checks that it keeps running until
// SIGTERM and then exits 0.
func checkPause(t *testing.T, bin []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pause")
	if err := os.WriteFile(path, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		t.Fatalf("pause exited before SIGTERM: %v", err)
	case <-time.After(500 * time.Millisecond):
		// Long enough for the runtime to start and main to subscribe to
		// SIGTERM; a signal before that would kill it with a non-zero status.
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("pause after SIGTERM: %v, want exit 0", err)
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("pause ignored SIGTERM")
	}
}
