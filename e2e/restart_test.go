//go:build e2e

package e2e

// Restart on change (issue 18): the refresh sidecar exits with
// plan.RestartExitCode once it has checked a new version, and the kubelet
// (RestartAllContainers, Kubernetes 1.36+) runs secretfetch-init again and
// restarts the app in place: same pod, same IP, new files and a new
// environment.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/secretfetch/secretfetch/internal/refresh"
	"github.com/secretfetch/secretfetch/internal/restart"
	"github.com/secretfetch/secretfetch/internal/smfake"
)

// restartSlack covers a poll, the check, the restart of every container and
// the init container's fetch.
const restartSlack = 60 * time.Second

func restartAnnotations(secrets, extra map[string]string) map[string]string {
	a := refreshAnnotations(secrets, extra)
	a["secretfetch.io/refresh-restart"] = "true"
	if _, ok := a["secretfetch.io/refresh-restart-window"]; !ok {
		a["secretfetch.io/refresh-restart-window"] = "0s"
	}
	return a
}

// appStatus is the app container's status in a pod.
func appStatus(p corev1.Pod) corev1.ContainerStatus {
	for _, s := range p.Status.ContainerStatuses {
		if s.Name == "app" {
			return s
		}
	}
	return corev1.ContainerStatus{}
}

// readProcessEnv lists the files and the variables that the app's own
// process (pid 1 of its container) started with.
func readProcessEnv(t testing.TB, ns, pod string, names ...string) envListing {
	t.Helper()
	l, err := tryReadProcessEnv(ns, pod, names...)
	requireNoErr(t, err, "reading the app's process environment in "+pod)
	return l
}

// tryReadProcessEnv is readProcessEnv for a container that may be
// restarting: exec then fails, and the caller retries.
func tryReadProcessEnv(ns, pod string, names ...string) (envListing, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := []string{"-n", ns, "exec", pod, "-c", "app", "--", "/demo-app", "--once", "--json", "--dir", mountPath, "--env-pid", "1"}
	for _, n := range names {
		args = append(args, "--env", n)
	}
	var l envListing
	out, err := kubectl(ctx, nil, args...)
	if err != nil {
		return l, err
	}
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		return l, fmt.Errorf("decoding the demo app's listing: %w", err)
	}
	return l, nil
}

func getPod(t testing.TB, ns, name string) corev1.Pod {
	t.Helper()
	p, err := env.cs.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	requireNoErr(t, err, "reading pod "+name)
	return *p
}

// TestRefreshRestart: an app that reads a file and a variable once, at
// start, gets the new values after PutSecretValue through a restart in
// place: the same pod (UID and IP), the app's restartCount up by one, and
// the values never in the API, events or etcd.
func TestRefreshRestart(t *testing.T) {
	ns := newNamespace(t, "restart")
	tokenID, dbID := ns+"/token", ns+"/db"
	oldToken, newToken := canary(t, "tok-old"), canary(t, "tok-new")
	oldDB, newDB := canary(t, "db-old"), canary(t, "db-new")
	putSecret(t, tokenID, oldToken)
	putSecret(t, dbID, oldDB)
	rollOut(t, ns, deployment("app", 1, restartAnnotations(map[string]string{"token": tokenID, "db": dbID}, map[string]string{
		"secretfetch.io/env-db":  "DB_PASSWORD",
		"secretfetch.io/file-db": "false",
	}), podSpec(true, e2eRoleARN)))

	before := runningPods(t, ns, "app")[0]
	l := readProcessEnv(t, ns, before.Name, "DB_PASSWORD")
	if v, _ := l.env("DB_PASSWORD"); string(v) != oldDB {
		t.Fatalf("the app started with DB_PASSWORD of %d bytes, want the first version's %d", len(v), len(oldDB))
	}
	if f, ok := l.file("token"); !ok || string(f.Value) != oldToken {
		t.Fatalf("the app does not read the first version of token")
	}

	put := time.Now()
	putVersion(t, tokenID, newToken)
	putVersion(t, dbID, newDB)
	var after corev1.Pod
	err := retry(context.Background(), refreshInterval+restartSlack, func() error {
		after = getPod(t, ns, before.Name)
		if n := appStatus(after).RestartCount; n != 1 || appStatus(after).State.Running == nil || !podReady(after) {
			return fmt.Errorf("app restartCount %d (running %v, ready %v), want 1, running and ready", n, appStatus(after).State.Running != nil, podReady(after))
		}
		l, err := tryReadProcessEnv(ns, after.Name, "DB_PASSWORD")
		if err != nil {
			return err
		}
		if v, _ := l.env("DB_PASSWORD"); string(v) != newDB {
			return fmt.Errorf("the app's process has DB_PASSWORD of %d bytes, not yet the new version's %d", len(v), len(newDB))
		}
		if f, ok := l.file("token"); !ok || string(f.Value) != newToken {
			return fmt.Errorf("token does not hold the new version yet")
		}
		return nil
	})
	requireNoErr(t, err, "waiting for the restart in place")
	t.Logf("the app ran with the new values %s after PutSecretValue (interval %s, window 0s)", time.Since(put).Round(100*time.Millisecond), refreshInterval)
	if after.UID != before.UID || after.Status.PodIP != before.Status.PodIP {
		t.Errorf("pod %s/%s became %s/%s: a restart in place keeps the pod and its IP", before.UID, before.Status.PodIP, after.UID, after.Status.PodIP)
	}
	// The kubelet records every container of the pod as removed for
	// RestartAllContainers (the sidecar's exit code 85 and its log go with
	// it), and the sidecar that starts afterwards says why in its log, from
	// the marker: the secrets and versions, never a value.
	if term := appStatus(after).LastTerminationState.Terminated; term == nil || term.Reason != "RestartingAllContainers" {
		t.Errorf("the app's last termination is %+v, want the reason RestartingAllContainers", term)
	}
	var logs string
	requireNoErr(t, retry(context.Background(), 30*time.Second, func() error {
		logs, err = kubectl(context.Background(), nil, "-n", ns, "logs", after.Name, "-c", refreshName, "--tail=-1")
		if err == nil && !strings.Contains(logs, refresh.RestartedLogMessage) {
			return fmt.Errorf("the sidecar has not logged %q yet", refresh.RestartedLogMessage)
		}
		return err
	}), "reading the sidecar's log after the restart")
	if !strings.Contains(logs, tokenID) || !strings.Contains(logs, dbID) {
		t.Errorf("the sidecar's log after the restart does not name %s and %s", tokenID, dbID)
	}
	for _, v := range []string{newToken, newDB, oldToken, oldDB} {
		if strings.Contains(logs, v) {
			t.Errorf("the sidecar's log holds a secret value (%d bytes)", len(v))
		}
	}

	// The values are nowhere in the API: not in the pod, not in events,
	// not in etcd.
	podJSON, err := json.Marshal(after)
	requireNoErr(t, err, "encoding the pod")
	evs, err := kubectl(context.Background(), nil, "-n", ns, "get", "events", "-o", "json")
	requireNoErr(t, err, "listing events")
	dump := etcdDump(t)
	for _, v := range []string{newToken, newDB, oldToken, oldDB} {
		if strings.Contains(string(podJSON), v) || strings.Contains(evs, v) || strings.Contains(string(dump), v) {
			t.Errorf("a secret value (%d bytes) reached the pod, its events or etcd", len(v))
		}
	}

	// A secret that changes again within the spacing (the webhook's
	// default, 15m) restarts nothing more.
	putVersion(t, tokenID, canary(t, "tok-third"))
	time.Sleep(4 * refreshInterval)
	if n := appStatus(getPod(t, ns, before.Name)).RestartCount; n != 1 {
		t.Errorf("app restartCount %d after a second rotation within the spacing, want 1", n)
	}
}

// TestRefreshRestartChecksFirst: a new version that fails its pattern
// restarts nothing and keeps the current files.
func TestRefreshRestartChecksFirst(t *testing.T) {
	ns := newNamespace(t, "restart-pattern")
	id := ns + "/token"
	good := canary(t, "good")
	putSecret(t, id, good)
	rollOut(t, ns, deployment("app", 1, restartAnnotations(map[string]string{"token": id}, map[string]string{
		"secretfetch.io/pattern-token": "^sfcanary-[a-z0-9-]+$",
	}), podSpec(true, e2eRoleARN)))
	putVersion(t, id, "NOT A MATCH "+canary(t, "bad"))
	holdValue(t, ns, "app", "token", good)
	if n := restarts(runningPods(t, ns, "app")); n != 0 {
		t.Errorf("containers restarted %d times for a version that fails its pattern, want 0", n)
	}
}

// TestRefreshRestartSpread: the replicas of one Deployment restart at
// offsets within the window hashed from their names, not together.
func TestRefreshRestartSpread(t *testing.T) {
	const replicas, window = 4, 40 * time.Second
	ns := newNamespace(t, "restart-spread")
	id := ns + "/token"
	putSecret(t, id, canary(t, "v1"))
	rollOut(t, ns, deployment("app", replicas, restartAnnotations(map[string]string{"token": id}, map[string]string{
		"secretfetch.io/refresh-restart-window": window.String(),
	}), podSpec(true, e2eRoleARN)))
	pods := runningPods(t, ns, "app")
	put := time.Now()
	putVersion(t, id, canary(t, "v2"))

	restartedAt := map[string]time.Time{}
	err := retry(context.Background(), refreshInterval+window+restartSlack, func() error {
		for _, p := range pods {
			s := appStatus(getPod(t, ns, p.Name))
			if s.RestartCount < 1 || s.State.Running == nil {
				return fmt.Errorf("%s has not restarted yet", p.Name)
			}
			restartedAt[p.Name] = s.State.Running.StartedAt.Time
		}
		return nil
	})
	requireNoErr(t, err, "waiting for every replica to restart")

	type slot struct {
		name   string
		offset time.Duration
		at     time.Duration
	}
	var slots []slot
	for _, p := range pods {
		slots = append(slots, slot{p.Name, restart.Offset(ns, p.Name, window), restartedAt[p.Name].Sub(put)})
	}
	sort.Slice(slots, func(i, j int) bool { return slots[i].offset < slots[j].offset })
	for _, s := range slots {
		t.Logf("%s: offset %s, restarted %s after PutSecretValue", s.name, s.offset.Round(time.Second), s.at.Round(time.Second))
		// Each restarts after its offset, within a poll (the interval and
		// its jitter) and the restart itself. StartedAt has whole seconds.
		if s.at < s.offset-time.Second || s.at > s.offset+refreshInterval+20*time.Second {
			t.Errorf("%s restarted %s after the new version, want between its offset %s and a poll and a restart later",
				s.name, s.at.Round(time.Second), s.offset.Round(time.Second))
		}
	}
	offsets := make([]time.Duration, len(slots))
	for i, s := range slots {
		offsets[i] = s.offset
	}
	if slices.Max(offsets)-slices.Min(offsets) < window/4 {
		t.Logf("the hashed offsets of these pod names happen to be close together (%v); the spread is shown by the unit test over 1,000 names", offsets)
	}
}

// TestRefreshRestartFetchFails: access is revoked after the sidecar has
// checked the new version and before the init container fetches it. The
// restarted pod does not come back with no files or half a set: the init
// container fails closed and the app stays down until the fetch succeeds,
// then it runs with the new version.
func TestRefreshRestartFetchFails(t *testing.T) {
	const window = 40 * time.Second
	ns := newNamespace(t, "restart-fail")
	id := ns + "/token"
	putSecret(t, id, canary(t, "v1"))
	// A bare pod, so that its name and so its offset are ours to choose:
	// late enough in the window to revoke access after the check.
	name := ""
	for i := 0; i < 1000 && name == ""; i++ {
		n := fmt.Sprintf("app-%d", i)
		if off := restart.Offset(ns, n, window); off > 20*time.Second && off < 35*time.Second {
			name = n
		}
	}
	d := deployment("app", 1, restartAnnotations(map[string]string{"token": id}, map[string]string{
		"secretfetch.io/refresh-restart-window": window.String(),
	}), podSpec(true, e2eRoleARN))
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: d.Spec.Template.Labels, Annotations: d.Spec.Template.Annotations}, Spec: d.Spec.Template.Spec}
	ctx := context.Background()
	_, err := env.cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	requireNoErr(t, err, "creating pod "+name)
	requireNoErr(t, retry(ctx, 120*time.Second, func() error {
		if p := getPod(t, ns, name); !podReady(p) {
			return fmt.Errorf("%s is not ready", name)
		}
		return nil
	}), "waiting for the pod")

	newValue := canary(t, "v2")
	putVersion(t, id, newValue)
	// The sidecar polls every interval; by twice that it has checked the
	// new version, and its turn is still at least ten seconds away.
	time.Sleep(2*refreshInterval + 2*time.Second)
	injectFault(t, smfake.FaultJSON{Operation: "GetSecretValue", SecretID: id, Code: "AccessDeniedException", Status: 400, Message: "revoked"})
	term := waitInitFailed(t, ns, name)
	if !strings.Contains(term.Message, "AccessDenied") {
		t.Errorf("the init container's termination message does not say AccessDenied (%d bytes)", len(term.Message))
	}
	p := getPod(t, ns, name)
	if s := appStatus(p); s.State.Running != nil || podReady(p) {
		t.Errorf("the app runs (or the pod is ready) while its init container fails: %+v", s.State)
	}

	clearFaults(t)
	requireNoErr(t, retry(ctx, restartSlack+60*time.Second, func() error {
		p := getPod(t, ns, name)
		if !podReady(p) {
			return fmt.Errorf("%s is not ready again", name)
		}
		l := readSecrets(t, ns, name)
		if f, ok := l.file("token"); !ok || string(f.Value) != newValue {
			return fmt.Errorf("token does not hold the new version")
		}
		return nil
	}), "waiting for the pod to come back once access returns")
}

// initStatus is an init container's status.
func initStatus(p corev1.Pod, name string) corev1.ContainerStatus {
	for _, s := range p.Status.InitContainerStatuses {
		if s.Name == name {
			return s
		}
	}
	return corev1.ContainerStatus{}
}

// BenchmarkRestartVsRollout measures, for one Deployment of one replica
// that reads a file and a variable once at start, the time from
// PutSecretValue to the app running with the new value through a restart
// in place (refresh-interval 3s, window 0s), and the time of a rollout of
// the same Deployment (kubectl rollout restart, to the new pod Ready), one
// after the other, five times each; it reports the medians.
//
//	go test -tags e2e -run '^$' -bench RestartVsRollout -benchtime 1x ./e2e/
func BenchmarkRestartVsRollout(b *testing.B) {
	const rounds = 5
	ns := newNamespace(b, "restart-bench")
	id := ns + "/db"
	putSecret(b, id, canary(b, "v0"))
	ann := restartAnnotations(map[string]string{"db": id}, map[string]string{"secretfetch.io/env-db": "DB_PASSWORD"})
	ctx := context.Background()
	for b.Loop() {
		var inPlace, rollout []time.Duration
		for i := range rounds {
			// A fresh Deployment each round: the spacing allows one
			// rotation restart per pod in 15 minutes.
			name := fmt.Sprintf("app-%d", i)
			d := deployment(name, 1, ann, podSpec(true, e2eRoleARN))
			d.Spec.Selector.MatchLabels["app"], d.Spec.Template.Labels["app"] = name, name
			rollOut(b, ns, d)
			pod := runningPods(b, ns, name)[0].Name
			value := canary(b, fmt.Sprintf("v%d", i+1))
			start := time.Now()
			putVersion(b, id, value)
			requireNoErr(b, retry(ctx, refreshInterval+restartSlack, func() error {
				l, err := tryReadProcessEnv(ns, pod, "DB_PASSWORD")
				if err != nil {
					return err
				}
				if v, _ := l.env("DB_PASSWORD"); string(v) != value {
					return fmt.Errorf("the app's process does not have the new value yet")
				}
				return nil
			}), "waiting for the restart in place")
			inPlace = append(inPlace, time.Since(start))

			start = time.Now()
			_, err := kubectl(ctx, nil, "-n", ns, "rollout", "restart", "deployment/"+name)
			requireNoErr(b, err, "restarting the rollout")
			_, err = kubectl(ctx, nil, "-n", ns, "rollout", "status", "deployment/"+name, "--timeout=120s")
			requireNoErr(b, err, "waiting for the rollout")
			rollout = append(rollout, time.Since(start))
			requireNoErr(b, env.cs.AppsV1().Deployments(ns).Delete(ctx, name, metav1.DeleteOptions{}), "deleting "+name)
		}
		b.ReportMetric(median(inPlace).Seconds(), "s-restart-in-place-median")
		b.ReportMetric(median(rollout).Seconds(), "s-rollout-median")
		fmt.Fprintf(os.Stderr, "PutSecretValue to the app running with it, in place: median %s %v; a rollout of the same Deployment: median %s %v\n",
			median(inPlace).Round(100*time.Millisecond), inPlace, median(rollout).Round(100*time.Millisecond), rollout)
	}
}
