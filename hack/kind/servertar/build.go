package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

type options struct {
	out, version, binDir, kubeadm, pause, localPath, debian string
	sourceVersions                                          keyValues
	refs                                                    []string
}

// keyValues is a repeatable KEY=VALUE flag.
type keyValues map[string]string

func (kv *keyValues) String() string { return fmt.Sprint(map[string]string(*kv)) }

func (kv *keyValues) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" || v == "" {
		return fmt.Errorf("%q: want REPOSITORY=VERSION", s)
	}
	if *kv == nil {
		*kv = keyValues{}
	}
	(*kv)[k] = v
	return nil
}

// epoch is every file's and config's time: the same binaries make the same
// images.
var epoch = time.Unix(0, 0).UTC()

const imagePath = "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"

// archives says which image archive of the tarball carries each image.
// kind reads these four names; the images kind would otherwise pull ride
// along in kube-proxy.tar.
var archives = map[string]string{
	"kube-apiserver":          "kube-apiserver.tar",
	"kube-controller-manager": "kube-controller-manager.tar",
	"kube-scheduler":          "kube-scheduler.tar",
}

const extraArchive = "kube-proxy.tar"

func (o options) validate() error {
	var errs []error
	for _, f := range []struct{ flag, value string }{
		{"--out", o.out}, {"--version", o.version}, {"--bin", o.binDir},
		{"--kubeadm", o.kubeadm}, {"--pause", o.pause}, {"--debian", o.debian},
	} {
		if f.value == "" {
			errs = append(errs, fmt.Errorf("%s is required", f.flag))
		}
	}
	if len(o.refs) == 0 {
		errs = append(errs, errors.New("no image references given: name every image kind needs"))
	}
	return errors.Join(errs...)
}

func run(ctx context.Context, o options) error {
	if err := o.validate(); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(o.out), ".servertar-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	b := &builder{o: o, tmp: tmp}

	groups := map[string]map[name.Reference]v1.Image{}
	for _, r := range o.refs {
		if err := ctx.Err(); err != nil {
			return err
		}
		ref, err := name.NewTag(r, name.StrictValidation)
		if err != nil {
			return fmt.Errorf("image reference %q: %w", r, err)
		}
		img, err := b.image(ref)
		if err != nil {
			return fmt.Errorf("building %s: %w", r, err)
		}
		archive, ok := archives[repoBase(ref)]
		if !ok {
			archive = extraArchive
		}
		if groups[archive] == nil {
			groups[archive] = map[name.Reference]v1.Image{}
		}
		groups[archive][ref] = img
	}
	for _, a := range append(mapValues(archives), extraArchive) {
		if groups[a] == nil {
			return fmt.Errorf("no image for %s: kind needs kube-apiserver, kube-controller-manager, kube-scheduler and kube-proxy", a)
		}
		if err := writeArchive(filepath.Join(tmp, a), groups[a]); err != nil {
			return fmt.Errorf("writing %s: %w", a, err)
		}
	}
	return b.writeServerTarball(ctx)
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// repoBase is the last element of a reference's repository:
// registry.k8s.io/coredns/coredns:v1.14.6 is coredns.
func repoBase(ref name.Tag) string { return path.Base(ref.RepositoryStr()) }

type builder struct {
	o      options
	tmp    string
	debian v1.Layer // shared by the images on the Debian base, compressed once
}

// image builds the image for ref from its repository's binaries.
func (b *builder) image(ref name.Tag) (v1.Image, error) {
	repo := repoBase(ref)
	bin := func(n string) string { return filepath.Join(b.o.binDir, n) }
	var (
		files      []file
		entrypoint []string
		onDebian   bool
	)
	switch repo {
	case "kube-apiserver", "kube-controller-manager", "kube-scheduler":
		files = []file{{"usr/local/bin/" + repo, bin(repo)}}
	case "kube-proxy":
		files, onDebian = []file{{"usr/local/bin/kube-proxy", bin("kube-proxy")}}, true
	case "etcd":
		files = []file{{"usr/local/bin/etcd", bin("etcd")}, {"usr/local/bin/etcdctl", bin("etcdctl")}}
	case "coredns":
		files, entrypoint = []file{{"coredns", bin("coredns")}}, []string{"/coredns"}
	case "pause", "kindnetd":
		files, entrypoint = []file{{"pause", b.o.pause}}, []string{"/pause"}
	case "local-path-provisioner":
		if b.o.localPath == "" {
			return nil, errors.New("--local-path is required for the local-path-provisioner image")
		}
		files = []file{{"usr/local/bin/local-path-provisioner", b.o.localPath}}
	case "local-path-helper":
		onDebian = true
	default:
		return nil, fmt.Errorf("no recipe for the repository %q: known are kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy, etcd, coredns, pause, kindnetd, local-path-provisioner and local-path-helper", repo)
	}

	img := empty.Image
	if onDebian {
		if b.debian == nil {
			l, err := tarball.LayerFromFile(b.o.debian, tarball.WithCompressedCaching)
			if err != nil {
				return nil, fmt.Errorf("reading the Debian base %s: %w", b.o.debian, err)
			}
			b.debian = l
		}
		var err error
		if img, err = mutate.AppendLayers(img, b.debian); err != nil {
			return nil, err
		}
	}
	if len(files) > 0 {
		l, err := b.layer(repo, files)
		if err != nil {
			return nil, err
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			return nil, err
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Created = v1.Time{Time: epoch}
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Env = []string{"PATH=" + imagePath}
	cf.Config.Entrypoint = entrypoint
	cf.Config.Labels = map[string]string{
		"org.opencontainers.image.title":  repo,
		"org.opencontainers.image.source": "https://github.com/secretfetch/secretfetch (hack/kind/servertar)",
	}
	if v, ok := b.o.sourceVersions[repo]; ok {
		cf.Config.Labels["org.opencontainers.image.version"] = v
	}
	if repo == "kindnetd" {
		cf.Config.Labels["org.opencontainers.image.description"] = "placeholder (/pause): the offline kind cluster runs with disableDefaultCNI"
	}
	return mutate.ConfigFile(img, cf)
}

// file is one regular file of a layer: its path in the image and the file
// on this machine it is copied from.
type file struct{ dst, src string }

// layer writes files into an uncompressed layer tarball in the scratch
// directory, executable and owned by root, with every parent directory.
func (b *builder) layer(name string, files []file) (v1.Layer, error) {
	p := filepath.Join(b.tmp, name+".layer.tar")
	f, err := os.Create(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	dirs := map[string]bool{}
	for _, fl := range files {
		var parents []string
		for d := path.Dir(fl.dst); d != "." && !dirs[d]; d = path.Dir(d) {
			parents = append([]string{d}, parents...)
			dirs[d] = true
		}
		for _, d := range parents {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: epoch}); err != nil {
				return nil, err
			}
		}
		if err := copyInto(tw, fl.dst, fl.src, 0o755); err != nil {
			return nil, fmt.Errorf("adding %s: %w", fl.src, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return tarball.LayerFromFile(p, tarball.WithCompressedCaching)
}

// copyInto writes the file src into tw as dst.
func copyInto(tw *tar.Writer, dst, src string, mode int64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", src)
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: dst, Mode: mode, Size: st.Size(), ModTime: epoch}); err != nil {
		return err
	}
	_, err = io.Copy(tw, in)
	return err
}

// writeServerTarball lays out kubernetes/ as a release's server tarball,
// which is what kind reads, and renames it into place when complete.
func (b *builder) writeServerTarball(ctx context.Context) error {
	tmp := b.o.out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	defer f.Close()
	// The archives and binaries are mostly compressed or incompressible
	// already; speed matters more than size here.
	zw, err := gzip.NewWriterLevel(f, gzip.BestSpeed)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	for _, d := range []string{"kubernetes/", "kubernetes/server/", "kubernetes/server/bin/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: epoch}); err != nil {
			return err
		}
	}
	version := []byte(b.o.version + "\n")
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "kubernetes/version", Mode: 0o644, Size: int64(len(version)), ModTime: epoch}); err != nil {
		return err
	}
	if _, err := tw.Write(version); err != nil {
		return err
	}
	const binDir = "kubernetes/server/bin/"
	entries := []file{
		{binDir + "kubeadm", b.o.kubeadm},
		{binDir + "kubelet", filepath.Join(b.o.binDir, "kubelet")},
		{binDir + "kubectl", filepath.Join(b.o.binDir, "kubectl")},
	}
	for _, a := range append(mapValues(archives), extraArchive) {
		entries = append(entries, file{binDir + a, filepath.Join(b.tmp, a)})
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := copyInto(tw, e.dst, e.src, 0o755); err != nil {
			return fmt.Errorf("adding %s: %w", e.src, err)
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, b.o.out)
}

// writeArchive writes a docker-archive of several images that kind sees
// whole. kind reads the tags of an archive from whichever of "repositories"
// and manifest.json comes first, and of manifest.json only the first
// image's, so a "repositories" entry naming every image goes first. ctr
// imports the archive by its manifest.json.
func writeArchive(p string, images map[name.Reference]v1.Image) error {
	body := p + ".images"
	if err := tarball.MultiRefWriteToFile(body, images); err != nil {
		return err
	}
	defer os.Remove(body)

	repos := map[string]map[string]string{}
	for ref, img := range images {
		tag, ok := ref.(name.Tag)
		if !ok {
			return fmt.Errorf("%s is not a tag", ref)
		}
		cfg, err := img.ConfigName()
		if err != nil {
			return err
		}
		// The key is the repository as written in the reference: kind
		// compares "repository:tag" strings, docker.io/ included.
		repo := strings.TrimSuffix(tag.String(), ":"+tag.TagStr())
		if repos[repo] == nil {
			repos[repo] = map[string]string{}
		}
		repos[repo][tag.TagStr()] = cfg.Hex
	}
	index, err := json.Marshal(repos)
	if err != nil {
		return err
	}

	out, err := os.Create(p)
	if err != nil {
		return err
	}
	defer out.Close()
	tw := tar.NewWriter(out)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "repositories", Mode: 0o644, Size: int64(len(index)), ModTime: epoch}); err != nil {
		return err
	}
	if _, err := tw.Write(index); err != nil {
		return err
	}
	in, err := os.Open(body)
	if err != nil {
		return err
	}
	defer in.Close()
	tr := tar.NewReader(in)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return out.Close()
}
