// Command servertar writes the Kubernetes server tarball that
// `kind build node-image --type file` takes, from binaries built on this
// machine, so that kind builds a node image with no registry:
//
//	go run ./hack/kind/servertar --out FILE --version v1.37.1 --bin DIR \
//	  --kubeadm FILE --pause FILE --local-path FILE --debian FILE REF...
//
// The tarball holds kubernetes/version, kubernetes/server/bin/{kubeadm,
// kubelet,kubectl}, and the image archives kind loads into the node. kind
// pulls every image the node needs (kubeadm's images, its sandbox image, its
// CNI and storage images) unless an archive carries it under the exact
// reference, so each REF names one image to build here, from its repository:
//
//	kube-apiserver, kube-controller-manager, kube-scheduler   the binary
//	kube-proxy            the binary on the Debian base (it runs iptables)
//	etcd                  etcd and etcdctl (the e2e suite's raw etcd check)
//	coredns/coredns       /coredns
//	pause                 /pause
//	local-path-provisioner, local-path-helper   the provisioner; the Debian base
//	kindnetd              a placeholder (/pause): the cluster runs with
//	                      disableDefaultCNI, and the proxy does not serve kindnetd
//
// A REF's tag is the one kind asks for; the binaries are the pinned builds
// (the etcd and CoreDNS of hack/tools), and each image's
// org.opencontainers.image.version label says which.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	var o options
	flag.StringVar(&o.out, "out", "", "the server tarball to write (required)")
	flag.StringVar(&o.version, "version", "", "the Kubernetes version, as in kubernetes/version (required)")
	flag.StringVar(&o.binDir, "bin", "", "directory with kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy, kubelet, kubectl, etcd, etcdctl and coredns (required)")
	flag.StringVar(&o.kubeadm, "kubeadm", "", "the kubeadm binary (required)")
	flag.StringVar(&o.pause, "pause", "", "the pause binary (required)")
	flag.StringVar(&o.localPath, "local-path", "", "the local-path-provisioner binary (required if a REF names it)")
	flag.StringVar(&o.debian, "debian", "", "a Debian root filesystem tarball, the base of kube-proxy and local-path-helper (required)")
	flag.Var(&o.sourceVersions, "source-version", "REPOSITORY=VERSION: the version of the binary in that image, for its label (repeatable)")
	flag.Parse()
	o.refs = flag.Args()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "servertar:", err)
		os.Exit(1)
	}
}
