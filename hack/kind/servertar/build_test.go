package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The references kind v0.33.0 looks for when it builds a node image for
// Kubernetes v1.37.1 (kubeadm's list, kind's sandbox, CNI and storage images).
var kindRefs = []string{
	"registry.k8s.io/kube-apiserver:v1.37.1",
	"registry.k8s.io/kube-controller-manager:v1.37.1",
	"registry.k8s.io/kube-scheduler:v1.37.1",
	"registry.k8s.io/kube-proxy:v1.37.1",
	"registry.k8s.io/coredns/coredns:v1.14.6",
	"registry.k8s.io/etcd:3.7.0-0",
	"registry.k8s.io/pause:3.10",
	"docker.io/kindest/kindnetd:v20260820-69b56db7",
	"docker.io/kindest/local-path-provisioner:v20260820-69b56db7",
	"docker.io/kindest/local-path-helper:v20260131-7181c60a",
}

// fixture writes a fake binary for every name, each containing its own
// name, and a one-file Debian root, and returns options that use them.
func fixture(t *testing.T) options {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "kubelet", "kubectl", "etcd", "etcdctl", "coredns"} {
		writeFile(t, filepath.Join(bin, n), n)
	}
	writeFile(t, filepath.Join(dir, "kubeadm"), "kubeadm")
	writeFile(t, filepath.Join(dir, "pause"), "pause")
	writeFile(t, filepath.Join(dir, "local-path-provisioner"), "local-path-provisioner")

	debian := filepath.Join(dir, "debian.tar")
	f, err := os.Create(debian)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	body := "ID=debian\n"
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "./etc/os-release", Mode: 0o644, Size: int64(len(body))}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write([]byte(body)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return options{
		out: filepath.Join(dir, "kubernetes-server-linux-amd64.tar.gz"), version: "v1.37.1", binDir: bin,
		kubeadm: filepath.Join(dir, "kubeadm"), pause: filepath.Join(dir, "pause"),
		localPath: filepath.Join(dir, "local-path-provisioner"), debian: debian,
		sourceVersions: keyValues{"etcd": "v3.7.0"},
		refs:           kindRefs,
	}
}

func writeFile(t *testing.T, p, body string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestRunWritesWhatKindReads extracts the tarball as kind does and checks
// each image kind would otherwise pull: it is in an archive under its exact
// reference, with the right binaries where kubeadm and kind run them.
func TestRunWritesWhatKindReads(t *testing.T) {
	o := fixture(t)
	if err := run(context.Background(), o); err != nil {
		t.Fatalf("run: %v", err)
	}
	files := readServerTarball(t, o.out)

	if got := string(files["kubernetes/version"]); got != "v1.37.1\n" {
		t.Errorf("kubernetes/version = %q, want %q", got, "v1.37.1\n")
	}
	for _, b := range []string{"kubeadm", "kubelet", "kubectl"} {
		if got := string(files["kubernetes/server/bin/"+b]); got != b {
			t.Errorf("kubernetes/server/bin/%s = %q, want the %s binary", b, got, b)
		}
	}

	tests := []struct {
		ref        string
		archive    string
		files      map[string]string // path in the image: content
		entrypoint []string
		version    string
	}{
		{"registry.k8s.io/kube-apiserver:v1.37.1", "kube-apiserver.tar", map[string]string{"usr/local/bin/kube-apiserver": "kube-apiserver"}, nil, ""},
		{"registry.k8s.io/kube-controller-manager:v1.37.1", "kube-controller-manager.tar", map[string]string{"usr/local/bin/kube-controller-manager": "kube-controller-manager"}, nil, ""},
		{"registry.k8s.io/kube-scheduler:v1.37.1", "kube-scheduler.tar", map[string]string{"usr/local/bin/kube-scheduler": "kube-scheduler"}, nil, ""},
		{"registry.k8s.io/kube-proxy:v1.37.1", "kube-proxy.tar", map[string]string{"usr/local/bin/kube-proxy": "kube-proxy", "etc/os-release": "ID=debian\n"}, nil, ""},
		{"registry.k8s.io/etcd:3.7.0-0", "kube-proxy.tar", map[string]string{"usr/local/bin/etcd": "etcd", "usr/local/bin/etcdctl": "etcdctl"}, nil, "v3.7.0"},
		{"registry.k8s.io/coredns/coredns:v1.14.6", "kube-proxy.tar", map[string]string{"coredns": "coredns"}, []string{"/coredns"}, ""},
		{"registry.k8s.io/pause:3.10", "kube-proxy.tar", map[string]string{"pause": "pause"}, []string{"/pause"}, ""},
		{"docker.io/kindest/kindnetd:v20260820-69b56db7", "kube-proxy.tar", map[string]string{"pause": "pause"}, []string{"/pause"}, ""},
		{"docker.io/kindest/local-path-provisioner:v20260820-69b56db7", "kube-proxy.tar", map[string]string{"usr/local/bin/local-path-provisioner": "local-path-provisioner"}, nil, ""},
		{"docker.io/kindest/local-path-helper:v20260131-7181c60a", "kube-proxy.tar", map[string]string{"etc/os-release": "ID=debian\n"}, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.ref, func(t *testing.T) {
			archive := files["kubernetes/server/bin/"+tc.archive]
			if archive == nil {
				t.Fatalf("no %s in the tarball", tc.archive)
			}
			if tags := repoTags(t, archive); !slices.Contains(tags, tc.ref) {
				t.Fatalf("%s carries %v, not %s", tc.archive, tags, tc.ref)
			}
			tag, err := name.NewTag(tc.ref)
			if err != nil {
				t.Fatal(err)
			}
			img, err := tarball.Image(func() (io.ReadCloser, error) {
				return io.NopCloser(strings.NewReader(string(archive))), nil
			}, &tag)
			if err != nil {
				t.Fatalf("reading %s from %s: %v", tc.ref, tc.archive, err)
			}
			got := imageFiles(t, img)
			for p, want := range tc.files {
				if got[p] != want {
					t.Errorf("%s in the image = %q, want %q", p, got[p], want)
				}
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.entrypoint, cf.Config.Entrypoint); diff != "" {
				t.Errorf("entrypoint (-want +got):\n%s", diff)
			}
			if !slices.Contains(cf.Config.Env, "PATH="+imagePath) {
				t.Errorf("env %v lacks PATH=%s: kubeadm runs the binaries by name", cf.Config.Env, imagePath)
			}
			if got := cf.Config.Labels["org.opencontainers.image.version"]; got != tc.version {
				t.Errorf("version label = %q, want %q", got, tc.version)
			}
		})
	}
}

func TestRunRefusesWhatItCannotBuild(t *testing.T) {
	tests := []struct {
		name string
		edit func(*options)
		want string
	}{
		{"unknown repository", func(o *options) { o.refs = append(o.refs, "registry.k8s.io/kube-dns:1.0") },
			`no recipe for the repository "kube-dns"`},
		{"no kube-scheduler", func(o *options) {
			o.refs = slices.DeleteFunc(slices.Clone(o.refs), func(r string) bool { return strings.Contains(r, "kube-scheduler") })
		}, "no image for kube-scheduler.tar"},
		{"no local-path binary", func(o *options) { o.localPath = "" }, "--local-path is required"},
		{"missing flags", func(o *options) { o.kubeadm, o.debian = "", "" }, "--kubeadm is required\n--debian is required"},
		{"no references", func(o *options) { o.refs = nil }, "no image references given"},
		{"a bad reference", func(o *options) { o.refs = []string{"registry.k8s.io/Kube-Proxy:v1"} }, `image reference "registry.k8s.io/Kube-Proxy:v1"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := fixture(t)
			tc.edit(&o)
			err := run(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run: %v, want an error containing %q", err, tc.want)
			}
			if _, statErr := os.Stat(o.out); !errors.Is(statErr, os.ErrNotExist) {
				t.Errorf("%s exists after a failed run (stat: %v)", o.out, statErr)
			}
		})
	}
}

func TestKeyValues(t *testing.T) {
	var kv keyValues
	if err := kv.Set("etcd=v3.7.0"); err != nil {
		t.Fatal(err)
	}
	if kv["etcd"] != "v3.7.0" {
		t.Errorf("etcd = %q, want v3.7.0", kv["etcd"])
	}
	for _, bad := range []string{"etcd", "=v1", "etcd="} {
		if err := kv.Set(bad); err == nil {
			t.Errorf("Set(%q) = nil, want an error", bad)
		}
	}
}

// readServerTarball reads a .tar.gz into a map of path to content.
func readServerTarball(t *testing.T, p string) map[string][]byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	return readTar(t, zr)
}

func readTar(t *testing.T, r io.Reader) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimPrefix(h.Name, "./")] = b
	}
}

// repoTags is what kind v0.33.0 reads as an archive's tags
// (GetArchiveTags): from whichever of "repositories" and manifest.json comes
// first, and of manifest.json, only the first image's RepoTags.
func repoTags(t *testing.T, archive []byte) []string {
	t.Helper()
	tr := tar.NewReader(strings.NewReader(string(archive)))
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("no repositories or manifest.json in the archive: %v", err)
		}
		if h.Name != "repositories" && h.Name != "manifest.json" {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		var tags []string
		if h.Name == "manifest.json" {
			var m []struct{ RepoTags []string }
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			return m[0].RepoTags
		}
		var repos map[string]map[string]string
		if err := json.Unmarshal(b, &repos); err != nil {
			t.Fatal(err)
		}
		for repo, ts := range repos {
			for tag := range ts {
				tags = append(tags, repo+":"+tag)
			}
		}
		return tags
	}
}

// imageFiles flattens an image's layers into path to content.
func imageFiles(t *testing.T, img v1.Image) map[string]string {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		for p, b := range readTar(t, rc) {
			out[p] = string(b)
		}
		rc.Close()
	}
	return out
}
