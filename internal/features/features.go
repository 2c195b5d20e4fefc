// Package features says which of the Kubernetes features that secretfetch
// builds on a cluster has, from the version its API server reports. Each
// feature is on by default from the version named here; a cluster whose
// operator turned one off is not seen here, and the webhook's flags turn it
// off for secretfetch too.
package features

import (
	"fmt"

	"k8s.io/apimachinery/pkg/util/version"
)

// A Feature is one version-bound capability of the cluster.
type Feature struct {
	// Name is how messages name it.
	Name string
	// Since is the first minor version of Kubernetes 1 where it is on by
	// default.
	Since uint
}

var (
	// EnvFiles is env[].valueFrom.fileKeyRef (beta and on by default in
	// 1.35): secretfetch.io/env-<name>.
	EnvFiles = Feature{Name: "EnvFiles (env[].valueFrom.fileKeyRef)", Since: 35}
	// RestartAllContainers is a container's restartPolicyRules action
	// RestartAllContainers (beta and on by default in 1.36):
	// secretfetch.io/refresh-restart.
	RestartAllContainers = Feature{Name: "restarting every container on a container's exit code (restartPolicyRules: RestartAllContainers)", Since: 36}
)

// Cluster is the version an API server reports.
type Cluster struct {
	// GitVersion is the version as reported, such as v1.37.1 or
	// v1.36.2-eks-1234abc.
	GitVersion string
	v          *version.Version
}

// Parse reads an API server's gitVersion.
func Parse(gitVersion string) (Cluster, error) {
	v, err := version.ParseGeneric(gitVersion)
	if err != nil {
		return Cluster{}, fmt.Errorf("reading the API server's version %q: %w", gitVersion, err)
	}
	return Cluster{GitVersion: gitVersion, v: v}, nil
}

// Has reports whether the cluster's version has f on by default.
func (c Cluster) Has(f Feature) bool {
	return c.v != nil && (c.v.Major() > 1 || c.v.Major() == 1 && c.v.Minor() >= f.Since)
}

// Why says why the cluster lacks f, for a denial: "it runs Kubernetes
// v1.35.4, and <feature> needs 1.36 or later".
func (c Cluster) Why(f Feature) string {
	return fmt.Sprintf("the API server reports Kubernetes %s, and %s needs 1.%d or later", c.GitVersion, f.Name, f.Since)
}
