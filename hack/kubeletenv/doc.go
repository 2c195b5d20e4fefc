// Package kubeletenv holds one test: secretfetch's env file writer
// (internal/envfile) against the env file parser of the kubelet that this
// project pins (k8s.io/kubernetes/pkg/kubelet/util/env), so that the two can
// never drift apart unnoticed.
//
// It is its own module because it needs k8s.io/kubernetes, and adding our
// module to hack/tools would move the versions of the dependencies that the
// local cluster's binaries are built with. `make test` runs it.
package kubeletenv
