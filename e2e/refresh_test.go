//go:build e2e

package e2e

// The refresh scenarios (issue 8). They need the webhook deployed with a
// --min-refresh-interval of a few seconds: manifests/overlays/local sets 2s.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/secretfetch/secretfetch/internal/refresh"
	"github.com/secretfetch/secretfetch/internal/smfake"
)

const (
	// refreshInterval is what the scenarios ask for; slack covers the
	// jitter, a poll's retries, and the time to read the files back.
	refreshInterval = 3 * time.Second
	refreshSlack    = 20 * time.Second
	refreshName     = "secretfetch-refresh"
	notifyAddr      = "127.0.0.1:9000"
)

func refreshAnnotations(secrets, extra map[string]string) map[string]string {
	a := annotations(secrets, extra)
	a["secretfetch.io/refresh-interval"] = refreshInterval.String()
	return a
}

// putVersion puts a new AWSCURRENT version and returns its ID.
func putVersion(t testing.TB, name, value string) string {
	t.Helper()
	var out struct {
		VersionID string `json:"versionId"`
	}
	err := env.fakeDo(context.Background(), http.MethodPost, "/_fake/secrets", smfake.SeedSecret{Name: name, String: &value}, &out)
	requireNoErr(t, err, "putting a version of "+name)
	return out.VersionID
}

func clearFaults(t testing.TB) {
	t.Helper()
	requireNoErr(t, env.fakeDo(context.Background(), http.MethodDelete, "/_fake/faults", nil, nil), "clearing faults")
}

// waitValue waits until every running pod of app reads want in file.
func waitValue(t testing.TB, ns, app, file, want string, timeout time.Duration) {
	t.Helper()
	err := retry(context.Background(), timeout, func() error {
		pods := runningPods(t, ns, app)
		if len(pods) == 0 {
			return fmt.Errorf("no running pod")
		}
		for _, p := range pods {
			f, ok := readSecrets(t, ns, p.Name).file(file)
			if !ok {
				return fmt.Errorf("%s: file %s is missing", p.Name, file)
			}
			if string(f.Value) != want {
				// Lengths only: a failure message must not print a value.
				return fmt.Errorf("%s: file %s holds %d bytes, not yet the %d expected", p.Name, file, len(f.Value), len(want))
			}
		}
		return nil
	})
	requireNoErr(t, err, "waiting for the new value of "+file)
}

// holdValue checks, for a few intervals, that the file keeps its value and
// that the pod stays Ready.
func holdValue(t testing.TB, ns, app, file, want string) {
	t.Helper()
	for range 3 {
		time.Sleep(refreshInterval)
		assertValue(t, ns, app, file, want)
		for _, p := range runningPods(t, ns, app) {
			if !podReady(p) {
				t.Errorf("%s is not Ready", p.Name)
			}
		}
	}
}

func podReady(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// restarts sums the restart counts of every container of the pods.
func restarts(pods []corev1.Pod) int32 {
	var n int32
	for _, p := range pods {
		for _, s := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
			n += s.RestartCount
		}
	}
	return n
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// Scenario 1 (and 7: every namespace of the suite enforces restricted):
// after PutSecretValue, the running app reads the new value within one
// interval plus slack, and nothing restarts.
func TestRefreshNewValue(t *testing.T) {
	ns := newNamespace(t, "refresh")
	id := ns + "/token"
	oldValue, newValue := canary(t, "old"), canary(t, "new")
	putSecret(t, id, oldValue)
	rollOut(t, ns, deployment("app", 1, refreshAnnotations(map[string]string{"token": id}, nil), podSpec(true, e2eRoleARN)))
	assertValue(t, ns, "app", "token", oldValue)

	pods := runningPods(t, ns, "app")
	p := pods[0]
	if len(p.Spec.InitContainers) < 2 || p.Spec.InitContainers[1].Name != refreshName ||
		p.Spec.InitContainers[1].RestartPolicy == nil || *p.Spec.InitContainers[1].RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Fatalf("the pod has no native sidecar %s right after secretfetch-init", refreshName)
	}
	ctx := context.Background()
	nsObj, err := env.cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	requireNoErr(t, err, "reading the namespace")
	if nsObj.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Errorf("the namespace does not enforce restricted; the scenario proves less than it says")
	}

	put := time.Now()
	putVersion(t, id, newValue)
	waitValue(t, ns, "app", "token", newValue, refreshInterval+refreshSlack)
	t.Logf("new value read %s after PutSecretValue (interval %s)", time.Since(put).Round(100*time.Millisecond), refreshInterval)
	if n := restarts(runningPods(t, ns, "app")); n != 0 {
		t.Errorf("containers restarted %d times, want 0", n)
	}
}

// Scenario 2: two files cut from one JSON secret switch together. The app
// reads both through one resolution of ..data, many times while versions
// are swapped in, and never sees a pair from two versions.
func TestRefreshSwapsTogether(t *testing.T) {
	ns := newNamespace(t, "together")
	id := ns + "/db"
	pair := func(k int) (string, string) { return fmt.Sprintf("user-%d", k), canary(t, fmt.Sprintf("pass%d", k)) }
	valid := map[string]bool{}
	put := func(k int) {
		u, p := pair(k)
		valid[sha(u)+"/"+sha(p)] = true
		putSecret(t, id, fmt.Sprintf(`{"user":%q,"password":%q}`, u, p))
	}
	put(0)
	ann := refreshAnnotations(map[string]string{"user": id, "pass": id},
		map[string]string{"secretfetch.io/key-user": "user", "secretfetch.io/key-pass": "password"})
	rollOut(t, ns, deployment("app", 1, ann, podSpec(true, e2eRoleARN)))
	pod := runningPods(t, ns, "app")[0].Name

	const sampleFor = 20 * time.Second
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), sampleFor+30*time.Second)
		defer cancel()
		out, err := kubectl(ctx, nil, "-n", ns, "exec", pod, "-c", "app", "--", "/demo-app", "--dir", mountPath, "--sample", sampleFor.String())
		done <- result{out, err}
	}()
	for k := 1; k <= 5; k++ {
		time.Sleep(refreshInterval)
		put(k)
	}
	r := <-done
	requireNoErr(t, r.err, "sampling the files")
	var s struct {
		Samples int `json:"samples"`
		Errors  int `json:"errors"`
		Sets    []struct {
			SHA256 map[string]string `json:"sha256"`
			Count  int               `json:"count"`
		} `json:"sets"`
	}
	requireNoErr(t, json.Unmarshal([]byte(r.out), &s), "decoding the sampling")
	if len(s.Sets) < 2 {
		t.Errorf("%d distinct sets in %d samples, want several: no swap happened while sampling", len(s.Sets), s.Samples)
	}
	for _, set := range s.Sets {
		if !valid[set.SHA256["user"]+"/"+set.SHA256["pass"]] {
			t.Errorf("%d samples read a user and a password from two different versions", set.Count)
		}
	}
	t.Logf("%d samples, %d sets, %d failed reads (a data directory removed just after ..data was resolved)", s.Samples, len(s.Sets), s.Errors)
}

// Scenario 3: a file pinned by version-id never changes, and its secret is
// never polled.
func TestRefreshPinned(t *testing.T) {
	ns := newNamespace(t, "pinned")
	pinnedID, currentID := ns+"/pinned", ns+"/current"
	pinnedValue := canary(t, "pinned")
	v1 := putVersion(t, pinnedID, pinnedValue)
	putSecret(t, currentID, canary(t, "current1"))
	ann := refreshAnnotations(map[string]string{"pinned": pinnedID, "current": currentID},
		map[string]string{"secretfetch.io/version-id-pinned": v1})
	rollOut(t, ns, deployment("app", 1, ann, podSpec(true, e2eRoleARN)))
	count := func(op string) int {
		n := 0
		for _, r := range fakeRequests(t) {
			if r.Operation == op && r.SecretID == pinnedID {
				n++
			}
		}
		return n
	}
	fetched := count("GetSecretValue") // the init container's first fetch

	putVersion(t, pinnedID, canary(t, "pinned2"))
	current2 := canary(t, "current2")
	putVersion(t, currentID, current2)
	// Once the current file has switched, the pinned one has had its chance.
	waitValue(t, ns, "app", "current", current2, refreshInterval+refreshSlack)
	assertValue(t, ns, "app", "pinned", pinnedValue)
	if n := count("DescribeSecret"); n != 0 {
		t.Errorf("the pinned secret was polled %d times, want never", n)
	}
	if n := count("GetSecretValue"); n != fetched {
		t.Errorf("%d GetSecretValue calls for the pinned secret after the first fetch, want none", n-fetched)
	}
}

// Scenario 4: throttling, then AccessDenied on GetSecretValue while
// refreshing: the old file stays, the pod stays Ready, and the new value
// arrives once the fault clears. Each fault stays until the sidecar has
// met it: a throttled sidecar stretches its interval (up to
// refresh.MaxStretch times), so a phase of fixed length could pass with no
// poll at all.
func TestRefreshFaults(t *testing.T) {
	ns := newNamespace(t, "faults")
	id := ns + "/token"
	oldValue, newValue := canary(t, "old"), canary(t, "new")
	putSecret(t, id, oldValue)
	rollOut(t, ns, deployment("app", 1, refreshAnnotations(map[string]string{"token": id}, nil), podSpec(true, e2eRoleARN)))
	t.Cleanup(func() { clearFaults(t) })
	stretched := refresh.MaxStretch*refreshInterval + refreshSlack

	injectFault(t, smfake.FaultJSON{Operation: "GetSecretValue", SecretID: id, Code: "ThrottlingException"})
	putVersion(t, id, newValue)
	holdValue(t, ns, "app", "token", oldValue)
	waitSidecarLogs(t, ns, "ThrottlingException", stretched)

	clearFaults(t)
	injectFault(t, smfake.FaultJSON{Operation: "GetSecretValue", SecretID: id, Code: "AccessDeniedException"})
	waitSidecarLogs(t, ns, "AccessDeniedException", stretched)
	holdValue(t, ns, "app", "token", oldValue)

	clearFaults(t)
	waitValue(t, ns, "app", "token", newValue, stretched)
	if n := restarts(runningPods(t, ns, "app")); n != 0 {
		t.Errorf("containers restarted %d times, want 0", n)
	}
	logs := sidecarLogs(t, ns)
	if strings.Contains(logs, oldValue) || strings.Contains(logs, newValue) {
		t.Error("a secret value appears in the sidecar's log")
	}
}

// sidecarLogs is the whole log of the refresh sidecar of the pods of app=app.
func sidecarLogs(t testing.TB, ns string) string {
	t.Helper()
	logs, err := kubectl(context.Background(), nil, "-n", ns, "logs", "-l", "app=app", "-c", refreshName, "--tail=-1")
	requireNoErr(t, err, "reading the sidecar's logs")
	return logs
}

// waitSidecarLogs waits until the refresh sidecar's log names code.
func waitSidecarLogs(t testing.TB, ns, code string, timeout time.Duration) {
	t.Helper()
	err := retry(context.Background(), timeout, func() error {
		if !strings.Contains(sidecarLogs(t, ns), code) {
			return fmt.Errorf("the sidecar's log does not name %s yet", code)
		}
		return nil
	})
	requireNoErr(t, err, "waiting for the sidecar to meet "+code)
}

// Scenario 5: with DescribeSecret denied, refresh works through the
// GetSecretValue fallback, and says once which permission is missing.
func TestRefreshDescribeDenied(t *testing.T) {
	ns := newNamespace(t, "nodescribe")
	id := ns + "/token"
	putSecret(t, id, canary(t, "old"))
	injectFault(t, smfake.FaultJSON{Operation: "DescribeSecret", SecretID: id, Code: "AccessDeniedException"})
	t.Cleanup(func() { clearFaults(t) })
	rollOut(t, ns, deployment("app", 1, refreshAnnotations(map[string]string{"token": id}, nil), podSpec(true, e2eRoleARN)))

	newValue := canary(t, "new")
	putVersion(t, id, newValue)
	waitValue(t, ns, "app", "token", newValue, refreshInterval+refreshSlack)

	if n := strings.Count(sidecarLogs(t, ns), `"missingPermission":"secretsmanager:DescribeSecret"`); n != 1 {
		t.Errorf("the missing permission is logged %d times, want once", n)
	}
}

// Scenario 6: a Job with refresh on completes: Kubernetes stops the native
// sidecar once the main container has finished.
func TestRefreshJobCompletes(t *testing.T) {
	ns := newNamespace(t, "job")
	id := ns + "/token"
	putSecret(t, id, canary(t, "job"))
	spec := podSpec(true, e2eRoleARN)
	spec.RestartPolicy = corev1.RestartPolicyNever
	spec.Containers[0].Args = []string{"--dir", mountPath, "--once", "--values", "hide"}
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "once"},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To[int32](0),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Annotations: refreshAnnotations(map[string]string{"token": id}, nil)},
				Spec:       spec,
			},
		},
	}
	ctx := context.Background()
	_, err := env.cs.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{})
	requireNoErr(t, err, "creating the Job")
	_, err = kubectl(ctx, nil, "-n", ns, "wait", "--for=condition=complete", "job/once", "--timeout=120s")
	requireNoErr(t, err, "waiting for the Job to complete")
}

// Scenario 8: the notify URL receives one POST per swap, naming the file
// and its versions and holding no value.
func TestRefreshNotify(t *testing.T) {
	ns := newNamespace(t, "notify")
	id := ns + "/token"
	putSecret(t, id, canary(t, "v0"))
	spec := podSpec(true, e2eRoleARN)
	spec.Containers[0].Args = append(spec.Containers[0].Args, "--notify-listen", notifyAddr)
	ann := refreshAnnotations(map[string]string{"token": id},
		map[string]string{"secretfetch.io/refresh-notify": "http://" + notifyAddr + "/reload"})
	rollOut(t, ns, deployment("app", 1, ann, spec))

	var values, versions []string
	for k := 1; k <= 2; k++ {
		v := canary(t, fmt.Sprintf("v%d", k))
		values = append(values, v)
		versions = append(versions, putVersion(t, id, v))
		waitValue(t, ns, "app", "token", v, refreshInterval+refreshSlack)
	}
	var logs string
	err := retry(context.Background(), 10*time.Second, func() error {
		out, err := kubectl(context.Background(), nil, "-n", ns, "logs", "-l", "app=app", "-c", "app", "--tail=-1")
		if err != nil {
			return err
		}
		logs = out
		if n := strings.Count(out, "notify: POST /reload "); n < 2 {
			return fmt.Errorf("%d notifications logged, want 2", n)
		}
		return nil
	})
	requireNoErr(t, err, "waiting for the notifications")
	if n := strings.Count(logs, "notify: POST /reload "); n != 2 {
		t.Errorf("%d notifications for 2 swaps, want one per swap", n)
	}
	for _, v := range versions {
		if !strings.Contains(logs, v) {
			t.Errorf("no notification names version %s", v)
		}
	}
	for _, v := range values {
		if strings.Contains(logs, v) {
			t.Error("a notification holds a secret value")
		}
	}
}

// Scenario 9: CloudTrail attribution. Every call of both containers names
// the pod in its user agent, as CloudTrail would record it.
func TestRefreshAttribution(t *testing.T) {
	ns := newNamespace(t, "attrib")
	id := ns + "/token"
	putSecret(t, id, canary(t, "a"))
	rollOut(t, ns, deployment("app", 1, refreshAnnotations(map[string]string{"token": id}, nil), podSpec(true, e2eRoleARN)))
	pod := runningPods(t, ns, "app")[0].Name
	want := "app/" + ns + "." + pod

	err := retry(context.Background(), refreshInterval+refreshSlack, func() error {
		ops := map[string]bool{}
		for _, r := range fakeRequests(t) {
			if r.SecretID != id {
				continue
			}
			if !strings.Contains(r.UserAgent, want) {
				return fmt.Errorf("%s from user agent %q, which does not name the pod (%s)", r.Operation, r.UserAgent, want)
			}
			ops[r.Operation] = true
		}
		if !ops["GetSecretValue"] || !ops["DescribeSecret"] {
			return fmt.Errorf("calls seen: %v; want the first fetch and a poll", ops)
		}
		return nil
	})
	requireNoErr(t, err, "checking the user agents in the fake's request log")

	found := false
	for _, r := range assumedRoles(t) {
		if r.SessionName == ns+"."+pod {
			found = true
		}
	}
	if !found {
		t.Errorf("no role session is named %s.%s", ns, pod)
	}
}

// BenchmarkRefreshOverhead measures what refresh adds to pod start-up: the
// time from creating a pod to seeing it Ready, for the same injected pod
// (three secrets, IRSA) with refresh off and on, alternating, one at a time.
// A native sidecar must be started (not finished) before the app starts.
//
//	go test -tags e2e -run '^$' -bench RefreshOverhead -benchtime 1x ./e2e/
func BenchmarkRefreshOverhead(b *testing.B) {
	const pods = 10
	ns := newNamespace(b, "refreshoverhead")
	secrets := map[string]string{}
	for _, s := range []string{"a", "b", "c"} {
		putSecret(b, ns+"/"+s, canary(b, "overhead"))
		secrets[s] = ns + "/" + s
	}
	compareStartup(b, ns, pods, "refresh overhead",
		startupKind{"refresh-off", annotations(secrets, nil)}, startupKind{"refresh-on", refreshAnnotations(secrets, nil)})
}
