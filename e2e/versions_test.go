//go:build e2e

package e2e

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// serverVersion is the cluster's version as its API server reports it: the
// gitVersion (v1.34.4) and the minor (34).
func serverVersion(t testing.TB) (string, int) {
	t.Helper()
	info, err := env.cs.Discovery().ServerVersion()
	requireNoErr(t, err, "reading the API server's version")
	minor, err := strconv.Atoi(strings.TrimRight(info.Minor, "+"))
	requireNoErr(t, err, "reading the API server's minor version "+info.Minor)
	return info.GitVersion, minor
}

// TestClusterFeatures: the webhook reads the cluster's version by itself, and
// each version-bound feature works where the cluster has it and is denied,
// with a message naming the feature, the version it needs and what to do
// instead, where it does not. The versions are written out here rather than
// taken from internal/features, so that the test checks them. make e2e runs
// it on 1.34 (both denied) and 1.37 (both admitted).
func TestClusterFeatures(t *testing.T) {
	gitVersion, minor := serverVersion(t)
	t.Logf("the API server reports Kubernetes %s", gitVersion)
	ns := newNamespace(t, "versions")

	t.Run("the webhook's view", func(t *testing.T) {
		ctx := context.Background()
		out, err := kubectl(ctx, nil, "-n", webhookNS, "logs", "deployment/"+webhookName, "--tail=-1")
		requireNoErr(t, err, "reading the webhook's log")
		var line string
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "cluster features") {
				line = l
			}
		}
		if line == "" {
			t.Fatal("the webhook's log has no \"cluster features\" line")
		}
		if !strings.Contains(line, gitVersion) {
			t.Errorf("the webhook logged %q, want the API server's version %s in it", line, gitVersion)
		}
	})

	for _, tt := range []struct {
		name  string
		since int // the first minor where it is on by default
		ann   map[string]string
		// admitted checks the mutated pod where the cluster has the feature.
		admitted func(t *testing.T, p *corev1.Pod)
		// denial holds what the denial says, beyond the version it needs.
		denial []string
	}{{
		name:  "EnvFiles",
		since: 35,
		ann:   annotations(map[string]string{"db": ns + "/db"}, map[string]string{"secretfetch.io/env-db": "DB_PASSWORD"}),
		admitted: func(t *testing.T, p *corev1.Pod) {
			i := slices.IndexFunc(p.Spec.Containers[0].Env, func(e corev1.EnvVar) bool { return e.Name == "DB_PASSWORD" })
			if i < 0 || p.Spec.Containers[0].Env[i].ValueFrom == nil || p.Spec.Containers[0].Env[i].ValueFrom.FileKeyRef == nil {
				t.Errorf("the app has no DB_PASSWORD through fileKeyRef: %+v", p.Spec.Containers[0].Env)
			}
		},
		denial: []string{"secretfetch.io/env-db", "EnvFiles", "the API server reports Kubernetes " + gitVersion, "as a file"},
	}, {
		name:  "RestartAllContainers",
		since: 36,
		ann:   restartAnnotations(map[string]string{"db": ns + "/db"}, nil),
		admitted: func(t *testing.T, p *corev1.Pod) {
			i := slices.IndexFunc(p.Spec.InitContainers, func(c corev1.Container) bool { return len(c.RestartPolicyRules) > 0 })
			if i < 0 || p.Spec.InitContainers[i].RestartPolicyRules[0].Action != corev1.ContainerRestartRuleActionRestartAllContainers {
				t.Errorf("no init container restarts every container: %+v", p.Spec.InitContainers)
			}
		},
		denial: []string{"secretfetch.io/refresh-restart", "RestartAllContainers", "the API server reports Kubernetes " + gitVersion, "secretfetch.io/refresh-notify"},
	}} {
		t.Run(tt.name, func(t *testing.T) {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "feature", Annotations: tt.ann}, Spec: podSpec(true, e2eRoleARN)}
			got, err := dryRun(ns, pod)
			if minor >= tt.since {
				requireNoErr(t, err, "creating a pod that asks for "+tt.name+" on "+gitVersion)
				tt.admitted(t, got)
				return
			}
			if err == nil {
				t.Fatalf("a pod that asks for %s was admitted on %s, which lacks it", tt.name, gitVersion)
			}
			t.Logf("denied on %s: %v", gitVersion, err)
			msg := err.Error()
			for _, want := range append([]string{"1." + strconv.Itoa(tt.since) + " or later"}, tt.denial...) {
				if !strings.Contains(msg, want) {
					t.Errorf("the denial does not say %q: %s", want, msg)
				}
			}
		})
	}
}
