//go:build e2e

package e2e

// Readers other than the init container's UID (issue 16). Every reader that
// the README's "Who owns the files" admits opens /var/run/secrets/app/<name>
// by its path, as cat does, on a node with fs.protected_symlinks=1 (the
// nodes' default; hack/node-sysctls gives it to the clusters here), before
// and after the refresh sidecar swaps in a new version.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// readerUser is one app container of a readers scenario.
type readerUser struct {
	name string
	uid  int64
}

func TestOtherReaders(t *testing.T) {
	requireProtectedSymlinks(t)
	const fsGroup = 3000
	for _, tt := range []struct {
		name    string
		mode    string
		fsGroup bool
		users   []readerUser
	}{
		{"one UID", "0400", false, []readerUser{{"app", 1000}}},
		{"several UIDs with fsGroup and 0440", "0440", true, []readerUser{{"app", 1000}, {"other", 2000}}},
		{"several UIDs with 0444", "0444", false, []readerUser{{"app", 1000}, {"other", 2000}}},
		{"a root reader with 0444", "0444", false, []readerUser{{"app", 1000}, {"root", 0}}},
		{"a root reader with fsGroup and 0440", "0440", true, []readerUser{{"app", 1000}, {"root", 0}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ns := newNamespace(t, "readers")
			if slices.ContainsFunc(tt.users, readerUser.isRoot) {
				// A root container is outside the restricted standard; the
				// injected containers are still checked against baseline.
				relabelNamespace(t, ns, "baseline")
			}
			tokenID, confID := ns+"/token", ns+"/conf"
			token, confCanary := canary(t, "token"), canary(t, "conf")
			putSecret(t, tokenID, token)
			putSecret(t, confID, fmt.Sprintf(`{"user":"app","password":%q}`, confCanary))

			spec := podSpec(true, e2eRoleARN)
			app := spec.Containers[0]
			spec.Containers = nil
			for _, u := range tt.users {
				c := *app.DeepCopy()
				c.Name = u.name
				c.SecurityContext.RunAsUser = ptr.To(u.uid)
				if u.uid == 0 {
					c.SecurityContext.RunAsNonRoot = ptr.To(false)
					c.SecurityContext.RunAsGroup = ptr.To[int64](0)
				}
				spec.Containers = append(spec.Containers, c)
			}
			if tt.fsGroup {
				spec.SecurityContext.FSGroup = ptr.To[int64](fsGroup)
			}
			if slices.ContainsFunc(tt.users, readerUser.isRoot) {
				spec.SecurityContext.RunAsNonRoot = nil
			}
			ann := refreshAnnotations(map[string]string{"token": tokenID, "conf": confID}, map[string]string{
				"secretfetch.io/mode-token":  tt.mode,
				"secretfetch.io/mode-conf":   tt.mode,
				"secretfetch.io/format-conf": "json",
			})
			rollOut(t, ns, deployment("app", 1, ann, spec))

			check := func(round, wantToken, wantConfCanary string) error {
				pods := runningPods(t, ns, "app")
				if len(pods) != 1 {
					return fmt.Errorf("%d running pods, want 1", len(pods))
				}
				for _, u := range tt.users {
					l := readAs(t, ns, pods[0].Name, u.name)
					for _, f := range []struct{ name, want string }{{"token", wantToken}, {"conf", wantConfCanary}} {
						got, ok := l.file(f.name)
						switch {
						case !ok:
							return fmt.Errorf("%s: container %s (uid %d) does not see %s", round, u.name, u.uid, f.name)
						case got.Error != "":
							return fmt.Errorf("%s: container %s (uid %d) cannot open %s/%s: %s", round, u.name, u.uid, mountPath, f.name, got.Error)
						case !strings.Contains(string(got.Value), f.want):
							// Lengths only: a failure message must not print a value.
							return fmt.Errorf("%s: container %s (uid %d) reads %d bytes in %s, not yet the version expected", round, u.name, u.uid, len(got.Value), f.name)
						case got.Mode != tt.mode:
							return fmt.Errorf("%s: %s has mode %s in container %s, want %s", round, f.name, got.Mode, u.name, tt.mode)
						}
					}
				}
				return nil
			}
			if err := check("before the swap", token, confCanary); err != nil {
				t.Fatal(err)
			}

			newToken := canary(t, "token2")
			newConfCanary := canary(t, "conf2")
			putVersion(t, tokenID, newToken)
			putVersion(t, confID, fmt.Sprintf(`{"user":"app","password":%q}`, newConfCanary))
			err := retry(context.Background(), refreshInterval+refreshSlack, func() error {
				return check("after the swap", newToken, newConfCanary)
			})
			requireNoErr(t, err, "reading the new versions in every container")
		})
	}
}

// readAs lists the secrets in one container through exec. The demo app
// opens each <name> by its path, as any app does, and reports the error of
// a file it cannot open instead of failing.
func readAs(t testing.TB, ns, pod, container string) listing {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := kubectl(ctx, nil, "-n", ns, "exec", pod, "-c", container, "--",
		"/demo-app", "--once", "--json", "--dir", mountPath)
	requireNoErr(t, err, "listing the secrets in container "+container)
	var l listing
	requireNoErr(t, json.Unmarshal([]byte(out), &l), "decoding the demo app's listing")
	return l
}

func (u readerUser) isRoot() bool { return u.uid == 0 }

// relabelNamespace sets the Pod Security Standard a namespace enforces.
func relabelNamespace(t testing.TB, ns, level string) {
	t.Helper()
	ctx := context.Background()
	obj, err := env.cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	requireNoErr(t, err, "reading namespace "+ns)
	obj.Labels["pod-security.kubernetes.io/enforce"] = level
	_, err = env.cs.CoreV1().Namespaces().Update(ctx, obj, metav1.UpdateOptions{})
	requireNoErr(t, err, "relabelling namespace "+ns)
}

// requireProtectedSymlinks fails the suite on a machine whose kernel does
// not protect symlinks as users' nodes do: the scenario would prove nothing
// there.
func requireProtectedSymlinks(t testing.TB) {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/fs/protected_symlinks")
	if err != nil {
		t.Fatalf("reading fs.protected_symlinks: %v", err)
	}
	if out := strings.TrimSpace(string(b)); out != "1" {
		t.Fatalf("fs.protected_symlinks is %s on this machine, not the nodes' 1: run the suite through make e2e or make kind-e2e, which set it (hack/node-sysctls)", out)
	}
}
