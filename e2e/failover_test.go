//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/secretfetch/secretfetch/internal/smfake"
)

const (
	replicaName   = "fake-secretsmanager-replica"
	replicaRegion = "us-west-2"
)

// replicaFake brings up the second fake (manifests/fake-secretsmanager/
// replica, us-west-2), points the webhook's failover endpoint at it, and
// undoes both when the test ends. It returns an environment whose admin
// calls reach the replica.
func replicaFake(t *testing.T) *environment {
	t.Helper()
	ctx := context.Background()
	dir := filepath.Join(env.root, "manifests/fake-secretsmanager/replica")
	_, err := kubectl(ctx, nil, "apply", "-k", dir)
	requireNoErr(t, err, "deploying the replica fake")
	t.Cleanup(func() { kubectl(context.Background(), nil, "delete", "--wait=false", "-k", dir) })
	_, err = kubectl(ctx, nil, "-n", fakeNS, "rollout", "status", "deployment/"+replicaName, "--timeout=120s")
	requireNoErr(t, err, "waiting for the replica fake")
	svc, err := env.cs.CoreV1().Services(fakeNS).Get(ctx, replicaName, metav1.GetOptions{})
	requireNoErr(t, err, "reading the replica's Service")
	replica := &environment{fakeURL: fmt.Sprintf("http://%s:%d", svc.Spec.ClusterIP, fakePort)}
	requireNoErr(t, retry(ctx, 60*time.Second, func() error { return replica.fakeGet(ctx, "/healthz", nil) }), "reaching the replica fake")

	// The webhook's flag, added to its container's args and removed again.
	dep, err := env.cs.AppsV1().Deployments(webhookNS).Get(ctx, webhookName, metav1.GetOptions{})
	requireNoErr(t, err, "reading the webhook's Deployment")
	ci := slices.IndexFunc(dep.Spec.Template.Spec.Containers, func(c corev1.Container) bool { return c.Name == "webhook" })
	if ci < 0 {
		t.Fatal("the webhook's Deployment has no container named webhook")
	}
	arg := fmt.Sprintf("--failover-secretsmanager-endpoint=http://%s.%s.svc.cluster.local:%d", replicaName, fakeNS, fakePort)
	patch := fmt.Sprintf(`[{"op":"add","path":"/spec/template/spec/containers/%d/args/-","value":%q}]`, ci, arg)
	_, err = kubectl(ctx, nil, "-n", webhookNS, "patch", "deployment", webhookName, "--type=json", "-p", patch)
	requireNoErr(t, err, "adding the failover endpoint to the webhook")
	restore := func() {
		ctx := context.Background()
		d, err := env.cs.AppsV1().Deployments(webhookNS).Get(ctx, webhookName, metav1.GetOptions{})
		if err != nil {
			t.Errorf("reading the webhook's Deployment to restore it: %v", err)
			return
		}
		if i := slices.Index(d.Spec.Template.Spec.Containers[ci].Args, arg); i >= 0 {
			p := fmt.Sprintf(`[{"op":"remove","path":"/spec/template/spec/containers/%d/args/%d"}]`, ci, i)
			if _, err := kubectl(ctx, nil, "-n", webhookNS, "patch", "deployment", webhookName, "--type=json", "-p", p); err != nil {
				t.Errorf("restoring the webhook: %v", err)
			}
		}
		kubectl(ctx, nil, "-n", webhookNS, "rollout", "status", "deployment/"+webhookName, "--timeout=180s")
		if err := waitFailoverEndpoint(ctx, false); err != nil {
			t.Errorf("the restored webhook does not serve: %v", err)
		}
	}
	t.Cleanup(restore)
	_, err = kubectl(ctx, nil, "-n", webhookNS, "rollout", "status", "deployment/"+webhookName, "--timeout=180s")
	requireNoErr(t, err, "rolling out the webhook with the failover endpoint")
	requireNoErr(t, waitFailoverEndpoint(ctx, true), "waiting for the webhook with the failover endpoint")
	return replica
}

// waitFailoverEndpoint waits until every answer of the webhook, 6 dry runs
// in a row of a pod with a failover region, does (or does not) set the
// failover endpoint: the Service may route to an old replica for a while
// after the rollout.
func waitFailoverEndpoint(ctx context.Context, want bool) error {
	probe := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"probe","namespace":"default","annotations":{
"secretfetch.io/inject":"true","secretfetch.io/secret-probe":"probe","secretfetch.io/failover-region":"` + replicaRegion + `"}},
"spec":{"securityContext":{"runAsUser":1000,"runAsGroup":1000},"containers":[{"name":"app","image":"` + appImage + `"}]}}`
	row := 0
	return retry(ctx, 120*time.Second, func() error {
		out, err := kubectl(ctx, strings.NewReader(probe), "create", "--dry-run=server", "-o", "json", "-f", "-")
		if err != nil {
			row = 0
			return err
		}
		if !strings.Contains(out, "secretfetch-init") || strings.Contains(out, "SECRETFETCH_FAILOVER_ENDPOINT_URL") != want {
			row = 0
			return fmt.Errorf("the webhook's answer does not yet reflect the failover endpoint setting (%v)", want)
		}
		if row++; row < 6 {
			return fmt.Errorf("%d answers in a row so far", row)
		}
		return nil
	})
}

// both seeds a secret in the primary fake and, with a value of its own, in
// the replica; it returns the replica's value.
func both(t *testing.T, replica *environment, id, primaryValue string) string {
	t.Helper()
	putSecret(t, id, primaryValue)
	v := canary(t, "replica")
	requireNoErr(t, replica.fakePost(context.Background(), "/_fake/secrets", smfake.SeedSecret{Name: id, String: &v}), "seeding the replica")
	return v
}

// replicaCalls counts the replica's calls of op for id.
func replicaCalls(t *testing.T, replica *environment, op, id string) int {
	t.Helper()
	var reqs []smfake.RequestJSON
	requireNoErr(t, replica.fakeGet(context.Background(), "/_fake/requests", &reqs), "reading the replica's request log")
	n := 0
	for _, r := range reqs {
		if r.Operation == op && r.SecretID == id && r.Status == 200 {
			n++
		}
	}
	return n
}

// down makes the primary region answer every Secrets Manager call for id
// with 503 ServiceUnavailable, as a region that cannot serve does; STS (the
// pod's credentials) keeps working.
func down(t *testing.T, id string) {
	t.Helper()
	injectFault(t, smfake.FaultJSON{SecretID: id, Code: "ServiceUnavailable", Status: 503})
}

// TestFailover: with secretfetch.io/failover-region, a pod whose primary
// region cannot answer starts with the replica's files; a refresh keeps
// working when the primary stops mid-life; and a primary that answers
// AccessDenied is not overruled by the replica.
func TestFailover(t *testing.T) {
	replica := replicaFake(t)
	failover := map[string]string{"secretfetch.io/failover-region": replicaRegion}

	t.Run("primary down at start", func(t *testing.T) {
		ns := newNamespace(t, "failover-start")
		id := ns + "/db"
		want := both(t, replica, id, canary(t, "primary"))
		down(t, id)
		rollOut(t, ns, deployment("app", 1, annotations(map[string]string{"db": id}, failover), podSpec(true, e2eRoleARN)))
		assertValue(t, ns, "app", "db", want)
		if n := replicaCalls(t, replica, "GetSecretValue", id); n < 1 {
			t.Errorf("the replica answered %d GetSecretValue calls for %s, want at least 1", n, id)
		}
		pod := runningPods(t, ns, "app")[0]
		logs, err := kubectl(context.Background(), nil, "-n", ns, "logs", pod.Name, "-c", "secretfetch-init")
		requireNoErr(t, err, "reading the init container's log")
		if !servedBy(logs, "db", replicaRegion) || !strings.Contains(logs, "reading the replica in the failover region") {
			t.Errorf("the init container's log does not say that %s served db after a failover:\n%s", replicaRegion, logs)
		}
	})

	t.Run("primary down mid-life", func(t *testing.T) {
		ns := newNamespace(t, "failover-refresh")
		id := ns + "/db"
		primaryValue := canary(t, "primary")
		both(t, replica, id, primaryValue)
		rollOut(t, ns, deployment("app", 1, refreshAnnotations(map[string]string{"db": id}, failover), podSpec(true, e2eRoleARN)))
		assertValue(t, ns, "app", "db", primaryValue)
		down(t, id)
		next := canary(t, "replica-v2")
		requireNoErr(t, replica.fakePost(context.Background(), "/_fake/secrets", smfake.SeedSecret{Name: id, String: &next}), "rotating the replica")
		waitValue(t, ns, "app", "db", next, refreshSlack+30*time.Second)
		for _, p := range runningPods(t, ns, "app") {
			if !podReady(p) {
				t.Errorf("%s is not Ready", p.Name)
			}
		}
	})

	t.Run("access denied does not fail over", func(t *testing.T) {
		ns := newNamespace(t, "failover-denied")
		id := ns + "/db"
		both(t, replica, id, canary(t, "primary"))
		injectFault(t, smfake.FaultJSON{SecretID: id, Code: "AccessDeniedException"})
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "app", Annotations: annotations(map[string]string{"db": id}, failover)},
			Spec:       podSpec(true, e2eRoleARN),
		}
		_, err := env.cs.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{})
		requireNoErr(t, err, "creating the pod")
		term := waitInitFailed(t, ns, "app")
		if !strings.Contains(term.Message, id) || !strings.Contains(term.Message, "AccessDeniedException") {
			t.Errorf("termination message %q, want %s with AccessDeniedException", term.Message, id)
		}
		if n := replicaCalls(t, replica, "GetSecretValue", id); n != 0 {
			t.Errorf("the replica served %s %d times after the primary denied it, want never", id, n)
		}
	})
}

// servedBy reports whether a JSON log line says that file was fetched from
// region.
func servedBy(logs, file, region string) bool {
	for _, line := range strings.Split(logs, "\n") {
		var l map[string]any
		if json.Unmarshal([]byte(line), &l) != nil {
			continue
		}
		if l["msg"] == "fetched secret" && l["file"] == file && l["region"] == region {
			return true
		}
	}
	return false
}
