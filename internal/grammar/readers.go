package grammar

import (
	"fmt"
	"slices"
	"strings"

	"github.com/secretfetch/secretfetch/internal/plan"
)

// protectedDirs are directories that belong to the system, the container
// runtime or Kubernetes. A mount at, under or above one of them would hide
// what the app or its AWS credentials need. /run is listed next to /var/run
// because one is usually a symlink to the other.
var protectedDirs = []string{
	"/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/sbin", "/sys", "/usr",
	"/var/run/secrets/kubernetes.io", "/run/secrets/kubernetes.io",
	"/var/run/secrets/eks.amazonaws.com", "/run/secrets/eks.amazonaws.com",
	"/var/run/secrets/pods.eks.amazonaws.com", "/run/secrets/pods.eks.amazonaws.com",
}

// CheckMountPath refuses a clean absolute path that would shadow a
// protected directory.
func CheckMountPath(p string) error {
	for _, d := range protectedDirs {
		if Within(p, d) {
			return fmt.Errorf("%q is in %s, which belongs to the system or to Kubernetes; use a dedicated directory such as %s", p, d, plan.DefaultDir)
		}
		if Within(d, p) {
			return fmt.Errorf("%q would hide %s, which belongs to the system or to Kubernetes; use a dedicated directory such as %s", p, d, plan.DefaultDir)
		}
	}
	return nil
}

// Within reports whether the clean absolute path p is dir or below it.
func Within(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}

// selectReaders returns the containers that get the mount: the ones named
// in the containers annotation, else every app container; ok is false when
// the annotation has problems.
func (p *parser) selectReaders() (readers []string, ok bool) {
	if !p.keys.hasContainers {
		return slices.Clone(p.in.Containers), true
	}
	// Each problem quotes its own entry, never the whole list: a list of
	// thousands of bad entries, each quoting the list, made answers of
	// tens of megabytes. CheckLimits has bounded the number of entries.
	list := p.keys.containers
	fp := annotation(AnnotationContainers)
	before := len(p.errs)
	emptyReported, has := false, ""
	for _, raw := range strings.Split(list, ",") {
		name := strings.TrimSpace(raw)
		switch {
		case name == "":
			if !emptyReported {
				p.add(invalid(fp, list, "an entry is empty; list container names separated by commas"))
				emptyReported = true
			}
		case name == InitContainerName:
			p.add(invalid(fp, name, fmt.Sprintf("%s is the webhook's own init container; list the containers that read the secrets", InitContainerName)))
		case name == RefreshContainerName:
			p.add(invalid(fp, name, fmt.Sprintf("%s is the webhook's own refresh sidecar; list the containers that read the secrets", RefreshContainerName)))
		case !slices.Contains(p.in.Containers, name) && !slices.Contains(p.in.InitContainers, name):
			if has == "" {
				has = QuoteList(p.containerNames())
			}
			p.add(invalid(fp, name, fmt.Sprintf("names no container or init container in this pod (it has %s)", has)))
		case slices.Contains(readers, name):
			p.add(duplicate(fp, name))
		default:
			readers = append(readers, name)
		}
	}
	return readers, len(p.errs) == before
}

// containerNames lists the pod's init containers, but the mutation's own
// init container, then its containers.
func (p *parser) containerNames() []string {
	var names []string
	for _, n := range p.in.InitContainers {
		if n != InitContainerName {
			names = append(names, n)
		}
	}
	return append(names, p.in.Containers...)
}
