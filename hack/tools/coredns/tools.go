//go:build tools

// Package tools pins the CoreDNS that hack/local-cluster runs as the local
// cluster's DNS. It is a module of its own because CoreDNS pins its own
// Kubernetes client libraries, which differ from the cluster's.
package tools

import _ "github.com/coredns/coredns"
