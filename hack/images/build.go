package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

const (
	registry = "secretfetch.local"
	pauseTag = "3.10"
	// nonroot is the numeric user and group of every image, distroless's
	// "nonroot", so the kubelet can check runAsNonRoot without a lookup.
	nonroot   = 65532
	indexFile = "images.json"
)

type options struct {
	out    string
	tag    string
	arch   string
	caFile string
	names  []string
	epoch  time.Time
}

// spec is one image: its name (also the binary's name, at /NAME) and the Go
// package that builds the binary.
type spec struct {
	name string
	pkg  string
}

func specs() []spec {
	return []spec{
		{"webhook", "./cmd/webhook"},
		{"init-fetch", "./cmd/init-fetch"},
		{"fake-secretsmanager", "./cmd/fake-secretsmanager"},
		{"demo-app", "./cmd/demo-app"},
		{"pause", "./hack/images/pause"},
		// The e2e suite's stand-in for the EKS pod identity webhook.
		{"e2e-irsa-webhook", "./e2e/irsawebhook"},
	}
}

// entry is what images.json records for one image.
type entry struct {
	// Ref is the image's name and tag, as ctr imports it.
	Ref string `json:"ref"`
	// Digest is the manifest digest that go-containerregistry computes.
	// containerd writes its own manifest when it imports a docker-archive
	// tarball, so `ctr images ls` may show another digest; ImageID is the
	// same everywhere.
	Digest string `json:"digest"`
	// ImageID is the config digest (`crictl images` shows its prefix).
	ImageID string `json:"imageID"`
	// File is the tarball, relative to the output directory.
	File string `json:"file"`
}

func run(ctx context.Context, o options, stdout, stderr io.Writer) error {
	if o.out == "" {
		return errors.New("--out is required")
	}
	if o.tag == "" {
		return errors.New("--tag must not be empty")
	}
	chosen, err := choose(o.names)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", o.out, err)
	}

	var ca []byte
	if o.caFile != "" {
		ca, err = os.ReadFile(o.caFile)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("reading the CA certificates: %w", err)
		}
	}

	binDir, err := os.MkdirTemp("", "secretfetch-images-")
	if err != nil {
		return fmt.Errorf("creating a build directory: %w", err)
	}
	defer os.RemoveAll(binDir)
	pkgs := make([]string, len(chosen))
	for i, s := range chosen {
		pkgs[i] = s.pkg
	}
	if err := goBuild(ctx, o.arch, binDir, pkgs, stderr); err != nil {
		return err
	}

	index, err := readIndex(filepath.Join(o.out, indexFile))
	if err != nil {
		return err
	}
	for _, s := range chosen {
		tag := o.tag
		if s.name == "pause" {
			tag = pauseTag
		}
		ref, err := name.NewTag(fmt.Sprintf("%s/%s:%s", registry, s.name, tag), name.StrictValidation)
		if err != nil {
			return fmt.Errorf("naming the %s image: %w", s.name, err)
		}
		bin, err := os.ReadFile(filepath.Join(binDir, filepath.Base(s.pkg)))
		if err != nil {
			return fmt.Errorf("reading the %s binary: %w", s.name, err)
		}
		img, err := buildImage(s.name, bin, ca, o.arch, o.epoch)
		if err != nil {
			return err
		}
		file := s.name + ".tar"
		if err := writeTarball(filepath.Join(o.out, file), ref, img); err != nil {
			return err
		}
		digest, err := img.Digest()
		if err != nil {
			return fmt.Errorf("computing the %s digest: %w", s.name, err)
		}
		id, err := img.ConfigName()
		if err != nil {
			return fmt.Errorf("computing the %s image ID: %w", s.name, err)
		}
		index[s.name] = entry{Ref: ref.String(), Digest: digest.String(), ImageID: id.String(), File: file}
		fmt.Fprintf(stdout, "%s %s\n", ref, digest)
	}
	return writeIndex(filepath.Join(o.out, indexFile), index)
}

// choose returns the specs for names, in their fixed order; all when names
// is empty.
func choose(names []string) ([]spec, error) {
	all := specs()
	if len(names) == 0 {
		return all, nil
	}
	var out []spec
	for _, s := range all {
		if slices.Contains(names, s.name) {
			out = append(out, s)
		}
	}
	for _, n := range names {
		if !slices.ContainsFunc(all, func(s spec) bool { return s.name == n }) {
			known := make([]string, len(all))
			for i, s := range all {
				known[i] = s.name
			}
			return nil, fmt.Errorf("unknown image %q (known: %s)", n, strings.Join(known, ", "))
		}
	}
	return out, nil
}

// goBuild compiles the packages, from the module root, into static binaries
// in dir: no cgo, no local paths, no build ID and no VCS stamp, so the same
// sources give the same bytes (as the Dockerfile, whose context has no .git).
func goBuild(ctx context.Context, arch, dir string, pkgs []string, stderr io.Writer) error {
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	args := append([]string{"build", "-trimpath", "-buildvcs=false", "-ldflags", "-s -w -buildid=", "-o", dir + string(filepath.Separator)}, pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("building %s: %w", strings.Join(pkgs, " "), err)
	}
	return nil
}

func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("finding the module root: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("finding the module root: not inside the secretfetch module")
	}
	return filepath.Dir(gomod), nil
}

// buildImage packs the binary into a one-layer image on an empty base: the
// binary at /NAME, the CA bundle (when given), and /etc/passwd and /etc/group
// naming the nonroot user. No shell, no /tmp: the containers run with a
// read-only root filesystem.
func buildImage(imageName string, binary, ca []byte, arch string, epoch time.Time) (v1.Image, error) {
	layer, err := rootfsLayer(imageName, binary, ca, epoch)
	if err != nil {
		return nil, err
	}
	created := v1.Time{Time: epoch}
	img, err := mutate.Append(empty.Image, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   created,
			CreatedBy: "go run ./hack/images " + imageName,
			Comment:   "static binary /" + imageName + ", CA certificates, nonroot user",
		},
	})
	if err != nil {
		return nil, fmt.Errorf("adding the %s layer: %w", imageName, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading the %s config: %w", imageName, err)
	}
	cf = cf.DeepCopy()
	cf.Created = created
	cf.OS = "linux"
	cf.Architecture = arch
	cf.Config.User = fmt.Sprintf("%d:%d", nonroot, nonroot)
	cf.Config.Entrypoint = []string{"/" + imageName}
	cf.Config.Env = []string{"PATH=/"}
	cf.Config.WorkingDir = "/"
	cf.Config.Labels = map[string]string{
		"org.opencontainers.image.title":  imageName,
		"org.opencontainers.image.source": "https://github.com/secretfetch/secretfetch",
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("setting the %s config: %w", imageName, err)
	}
	return img, nil
}

func rootfsLayer(imageName string, binary, ca []byte, epoch time.Time) (v1.Layer, error) {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/nonexistent:/sbin/nologin\n", nonroot, nonroot)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", nonroot)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, data []byte) error {
		h.ModTime = epoch
		h.Size = int64(len(data))
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	dir := func(p string) error {
		return add(&tar.Header{Typeflag: tar.TypeDir, Name: p + "/", Mode: 0o755}, nil)
	}
	file := func(p string, mode int64, data []byte) error {
		return add(&tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: mode}, data)
	}
	// Every file is owned by root, so the nonroot user can change none.
	steps := []func() error{
		func() error { return dir("etc") },
		func() error { return file("etc/group", 0o644, []byte(group)) },
		func() error { return file("etc/passwd", 0o644, []byte(passwd)) },
	}
	if ca != nil {
		steps = append(steps,
			func() error { return dir("etc/ssl") },
			func() error { return dir("etc/ssl/certs") },
			func() error { return file("etc/ssl/certs/ca-certificates.crt", 0o644, ca) },
		)
	}
	steps = append(steps, func() error { return file(imageName, 0o755, binary) })
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, fmt.Errorf("writing the %s layer: %w", imageName, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("writing the %s layer: %w", imageName, err)
	}
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
	if err != nil {
		return nil, fmt.Errorf("compressing the %s layer: %w", imageName, err)
	}
	return layer, nil
}

// writeTarball writes a docker-archive tarball (manifest.json, config,
// layers), which `ctr images import` and `docker load` accept, atomically.
func writeTarball(path string, ref name.Tag, img v1.Image) error {
	tmp := path + ".tmp"
	if err := tarball.WriteToFile(tmp, ref, img); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// readIndex reads images.json, so that building some images keeps the
// entries of the others.
func readIndex(path string) (map[string]entry, error) {
	index := map[string]entry{}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return index, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if err := json.Unmarshal(data, &index); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return index, nil
}

func writeIndex(path string, index map[string]entry) error {
	// encoding/json sorts map keys, so the file is stable.
	data, err := json.MarshalIndent(index, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", path, err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
