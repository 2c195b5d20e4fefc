//go:build tools

// Package tools pins the second, older Kubernetes that hack/local-cluster
// builds from source when KUBERNETES=1.34: the oldest minor in EKS standard
// support, so the suite proves what users of that version get. etcd and
// CoreDNS come from the default pin in hack/tools.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
