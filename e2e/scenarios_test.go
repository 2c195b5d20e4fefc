//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/secretfetch/secretfetch/internal/smfake"
)

// TestHappyPath: a two-replica Deployment in a restricted namespace gets a
// string, a JSON key and a binary secret as 0400 files owned by its UID, on a
// read-only tmpfs; and no value reaches etcd, the API or any log.
func TestHappyPath(t *testing.T) {
	ns := newNamespace(t, "happy")
	str, field := canary(t, "string"), canary(t, "jsonkey")
	bin := append([]byte{0x00, 0xff, 0x10}, canary(t, "binary")...)
	putSecret(t, ns+"/plain", str)
	putSecret(t, ns+"/json", `{"db":{"user":"app","password":"`+field+`"},"port":5432}`)
	putBinarySecret(t, ns+"/binary", bin)

	// Two files from one JSON secret: one GetSecretValue call serves both.
	ann := annotations(map[string]string{"plain": ns + "/plain", "password": ns + "/json", "user": ns + "/json", "blob": ns + "/binary"},
		map[string]string{"secretfetch.io/key-password": "db.password", "secretfetch.io/key-user": "db.user"})
	rollOut(t, ns, deployment("app", 2, ann, podSpec(true, e2eRoleARN)))

	pods := runningPods(t, ns, "app")
	if len(pods) != 2 {
		t.Fatalf("got %d running pods, want 2", len(pods))
	}
	want := map[string][]byte{"plain": []byte(str), "password": []byte(field), "user": []byte("app"), "blob": bin}
	for _, p := range pods {
		t.Run("files/"+p.Name, func(t *testing.T) {
			l := readSecrets(t, ns, p.Name)
			if !l.Tmpfs {
				t.Errorf("%s is not on tmpfs in the app container", l.Dir)
			}
			if !l.ReadOnly {
				t.Errorf("%s is writable by the app container, want a read-only mount", l.Dir)
			}
			if len(l.Files) != len(want) {
				t.Errorf("got %d files, want %d", len(l.Files), len(want))
			}
			for name, value := range want {
				f, ok := l.file(name)
				if !ok {
					t.Errorf("file %s is missing", name)
					continue
				}
				if !bytes.Equal(f.Value, value) {
					// Lengths only: a test failure must not print a secret.
					t.Errorf("file %s: content differs (%d bytes, want %d)", name, len(f.Value), len(value))
				}
				if f.Mode != "0400" || f.UID != appUID {
					t.Errorf("file %s: mode %s owner %d, want 0400 owner %d", name, f.Mode, f.UID, appUID)
				}
			}
		})
	}

	t.Run("one request per secret", func(t *testing.T) {
		calls := map[string]int{}
		for _, r := range fakeRequests(t) {
			if r.Operation == "GetSecretValue" && r.Status == 200 {
				calls[r.SecretID]++
			}
		}
		// Every run of init-fetch fetches each secret once, whatever the
		// number of runs: the JSON secret behind two files included.
		if plain, json := calls[ns+"/plain"], calls[ns+"/json"]; plain < len(pods) || json != plain {
			t.Errorf("the fake answered %d calls for %s/plain and %d for %s/json, want one each per pod (%d pods)",
				plain, ns, json, ns, len(pods))
		}
	})

	t.Run("init container", func(t *testing.T) {
		p := pods[0]
		if len(p.Spec.InitContainers) == 0 || p.Spec.InitContainers[0].Name != "secretfetch-init" {
			t.Fatalf("the first init container is not secretfetch-init")
		}
		ic := p.Spec.InitContainers[0]
		if !hasEnv(ic, "AWS_ROLE_ARN", e2eRoleARN) {
			t.Errorf("secretfetch-init lacks the pod's IRSA role")
		}
		if p.Annotations["secretfetch.io/status"] != "injected" {
			t.Errorf("status annotation = %q, want injected", p.Annotations["secretfetch.io/status"])
		}
		// The credentials really were the pod's own: the fake's STS issued
		// them for the pod's service account and role.
		found := false
		for _, r := range assumedRoles(t) {
			if r.RoleARN == e2eRoleARN && strings.Contains(r.Subject, "system:serviceaccount:"+ns+":default") {
				found = true
			}
		}
		if !found {
			t.Errorf("the fake's STS never issued credentials for %s to a service account of %s", e2eRoleARN, ns)
		}
	})

	t.Run("nothing reaches etcd, the API or a log", func(t *testing.T) {
		canaries := [][]byte{[]byte(str), []byte(field), bin[3:]}
		id := ns + "/plain"
		// Each place comes with a positive control: something that must be
		// there (the secret's ID, or for the webhook, which logs no IDs,
		// the namespace), or finding no value there would prove nothing.
		type place struct {
			where  string
			data   []byte
			marker string
		}
		places := []place{{"etcd", etcdDump(t), id}}
		ctx := context.Background()
		for _, q := range []struct {
			args   []string
			marker string
		}{
			{[]string{"get", "pods,replicasets,deployments,events", "-A", "-o", "json"}, id},
			{[]string{"-n", ns, "logs", "-l", "app=app", "--all-containers", "--prefix", "--tail=-1"}, id},
			{[]string{"-n", webhookNS, "logs", "-l", "app.kubernetes.io/name=" + webhookName, "--all-containers", "--prefix", "--tail=-1"}, ns},
			{[]string{"-n", fakeNS, "logs", "deployment/" + fakeName, "--all-containers", "--prefix", "--tail=-1"}, id},
		} {
			out, err := kubectl(ctx, nil, q.args...)
			requireNoErr(t, err, "reading "+strings.Join(q.args, " "))
			places = append(places, place{"kubectl " + strings.Join(q.args, " "), []byte(out), q.marker})
		}
		for _, p := range places {
			if !bytes.Contains(p.data, []byte(p.marker)) {
				t.Errorf("%s does not mention %s; the search there proves nothing", p.where, p.marker)
			}
			for i, c := range canaries {
				if bytes.Contains(p.data, c) {
					t.Errorf("secret value #%d appears in %s", i, p.where)
				}
			}
		}
	})
}

// TestRotation: after PutSecretValue a rollout restart serves the new value,
// and a pod that asks for AWSPREVIOUS gets the old one.
func TestRotation(t *testing.T) {
	ns := newNamespace(t, "rotate")
	id := ns + "/rotating"
	oldValue, newValue := canary(t, "old"), canary(t, "new")
	putSecret(t, id, oldValue)
	rollOut(t, ns, deployment("app", 1, annotations(map[string]string{"token": id}, nil), podSpec(true, e2eRoleARN)))
	assertValue(t, ns, "app", "token", oldValue)

	putSecret(t, id, newValue) // PutSecretValue: the new version becomes AWSCURRENT
	ctx := context.Background()
	_, err := kubectl(ctx, nil, "-n", ns, "rollout", "restart", "deployment/app")
	requireNoErr(t, err, "restarting the rollout")
	_, err = kubectl(ctx, nil, "-n", ns, "rollout", "status", "deployment/app", "--timeout=120s")
	requireNoErr(t, err, "waiting for the restarted rollout")
	assertValue(t, ns, "app", "token", newValue)

	prev := annotations(map[string]string{"token": id}, map[string]string{"secretfetch.io/version-stage-token": "AWSPREVIOUS"})
	rollOut(t, ns, deployment("previous", 1, prev, podSpec(true, e2eRoleARN)))
	assertValue(t, ns, "previous", "token", oldValue)
}

func assertValue(t testing.TB, ns, app, file, want string) {
	t.Helper()
	pods := runningPods(t, ns, app)
	if len(pods) == 0 {
		t.Fatalf("no running pod for %s", app)
	}
	for _, p := range pods {
		f, ok := readSecrets(t, ns, p.Name).file(file)
		if !ok {
			t.Fatalf("%s: file %s is missing", p.Name, file)
		}
		if string(f.Value) != want {
			t.Errorf("%s: file %s does not hold the expected version (%d bytes, want %d)", p.Name, file, len(f.Value), len(want))
		}
	}
}

// TestFailClosed: a missing secret, AccessDenied and a pattern mismatch each
// keep the pod from running, and the init container's termination message
// names the secret and the error code, never the value.
func TestFailClosed(t *testing.T) {
	ns := newNamespace(t, "failclosed")
	value := canary(t, "mismatch")
	putSecret(t, ns+"/mismatch", value)
	putSecret(t, ns+"/denied", canary(t, "denied"))
	injectFault(t, smfake.FaultJSON{SecretID: ns + "/denied", Code: "AccessDeniedException"})

	cases := []struct {
		name, id, code string
		extra          map[string]string
	}{
		{"missing", ns + "/does-not-exist", "ResourceNotFoundException", nil},
		{"access-denied", ns + "/denied", "AccessDeniedException", nil},
		{"pattern-mismatch", ns + "/mismatch", "PatternMismatch", map[string]string{"secretfetch.io/pattern-value": "^[0-9]+$"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: tc.name, Annotations: annotations(map[string]string{"value": tc.id}, tc.extra)},
				Spec:       podSpec(true, e2eRoleARN),
			}
			_, err := env.cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
			requireNoErr(t, err, "creating the pod")
			term := waitInitFailed(t, ns, tc.name)
			if !strings.Contains(term.Message, tc.id) || !strings.Contains(term.Message, tc.code) {
				t.Errorf("termination message %q does not name %s and %s", term.Message, tc.id, tc.code)
			}
			if strings.Contains(term.Message, value) {
				t.Errorf("the termination message contains the secret value")
			}
			described, err := kubectl(ctx, nil, "-n", ns, "describe", "pod", tc.name)
			requireNoErr(t, err, "describing the pod")
			if !strings.Contains(described, tc.code) {
				t.Errorf("kubectl describe does not show %s", tc.code)
			}
			if strings.Contains(described, value) {
				t.Errorf("kubectl describe shows the secret value")
			}
			p, err := env.cs.CoreV1().Pods(ns).Get(ctx, tc.name, metav1.GetOptions{})
			requireNoErr(t, err, "reading the pod")
			for _, s := range p.Status.ContainerStatuses {
				if s.State.Running != nil {
					t.Errorf("container %s is running although its secrets could not be fetched", s.Name)
				}
			}
		})
	}
}

// TestThrottling: the fake throttles the first requests for a secret; the
// init container retries and the pod starts.
func TestThrottling(t *testing.T) {
	ns := newNamespace(t, "throttle")
	id := ns + "/throttled"
	value := canary(t, "throttled")
	putSecret(t, id, value)
	injectFault(t, smfake.FaultJSON{Operation: "GetSecretValue", SecretID: id, Code: "ThrottlingException", Count: 3})
	rollOut(t, ns, deployment("app", 1, annotations(map[string]string{"value": id}, nil), podSpec(true, e2eRoleARN)))
	assertValue(t, ns, "app", "value", value)

	var throttled, ok int
	for _, r := range fakeRequests(t) {
		if r.Operation != "GetSecretValue" || r.SecretID != id {
			continue
		}
		switch {
		case r.Code == "ThrottlingException":
			throttled++
		case r.Status == 200:
			ok++
		}
	}
	if throttled != 3 || ok < 1 {
		t.Errorf("the fake saw %d throttled and %d successful calls for %s, want 3 and at least 1", throttled, ok, id)
	}
}

// TestBadAnnotation: a bad annotation is refused with the webhook's message;
// for a Deployment, the ReplicaSet's events carry it.
func TestBadAnnotation(t *testing.T) {
	ns := newNamespace(t, "bad")
	bad := map[string]string{"secretfetch.io/mode-db": "0600", "secretfetch.io/secert-typo": "x"}
	ann := annotations(map[string]string{"db": "prod/db"}, bad)

	t.Run("bare pod", func(t *testing.T) {
		pod := &corev1.Pod{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: ns, Annotations: ann},
			Spec:       podSpec(false, ""),
		}
		_, err := kubectl(context.Background(), strings.NewReader(mustJSON(t, pod)), "apply", "-f", "-")
		if err == nil {
			t.Fatal("kubectl apply accepted a pod with bad annotations")
		}
		for _, want := range []string{"secretfetch.io/mode-db", "0400", "secretfetch.io/secert-typo"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("the denial does not mention %q: %v", want, err)
			}
		}
	})

	t.Run("deployment", func(t *testing.T) {
		ctx := context.Background()
		_, err := env.cs.AppsV1().Deployments(ns).Create(ctx, deployment("bad", 1, ann, podSpec(false, "")), metav1.CreateOptions{})
		requireNoErr(t, err, "creating the deployment")
		requireNoErr(t, retry(ctx, 60*time.Second, func() error {
			events, err := env.cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "reason=FailedCreate"})
			if err != nil {
				return err
			}
			for _, e := range events.Items {
				if e.InvolvedObject.Kind == "ReplicaSet" && strings.Contains(e.Message, "secretfetch.io/mode-db") {
					return nil
				}
			}
			return errNotYet("no FailedCreate event naming secretfetch.io/mode-db")
		}), "waiting for the ReplicaSet's event")
		if n := len(runningPods(t, ns, "bad")); n != 0 {
			t.Errorf("%d pods of the bad deployment are running", n)
		}
	})
}

// TestBlastRadius: with no webhook replica, an opted-in pod is refused (the
// policy fails closed) and a pod that did not opt in still starts.
func TestBlastRadius(t *testing.T) {
	ns := newNamespace(t, "blast")
	ctx := context.Background()
	scale := func(n int) {
		_, err := kubectl(ctx, nil, "-n", webhookNS, "scale", "deployment/"+webhookName, "--replicas="+itoa(n))
		requireNoErr(t, err, "scaling the webhook")
	}
	scale(0)
	t.Cleanup(func() {
		scale(2)
		_, _ = kubectl(ctx, nil, "-n", webhookNS, "rollout", "status", "deployment/"+webhookName, "--timeout=120s")
		if err := env.waitWebhookServing(ctx); err != nil {
			t.Errorf("the webhook did not come back: %v", err)
		}
	})
	requireNoErr(t, retry(ctx, 60*time.Second, func() error {
		pods, err := env.cs.CoreV1().Pods(webhookNS).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=" + webhookName})
		if err != nil {
			return err
		}
		if len(pods.Items) > 0 {
			return errNotYet("webhook pods still exist")
		}
		return nil
	}), "waiting for the webhook to scale to zero")

	optedIn := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "opted-in", Annotations: annotations(map[string]string{"x": "some/secret"}, nil)},
		Spec:       podSpec(false, ""),
	}
	_, err := env.cs.CoreV1().Pods(ns).Create(ctx, optedIn, metav1.CreateOptions{})
	if err == nil {
		t.Fatal("an opted-in pod was admitted while no webhook replica was running")
	}
	if !strings.Contains(err.Error(), "inject.secretfetch.io") {
		t.Errorf("the refusal does not name the webhook: %v", err)
	}

	plain := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "plain"}, Spec: podSpec(false, "")}
	_, err = env.cs.CoreV1().Pods(ns).Create(ctx, plain, metav1.CreateOptions{})
	requireNoErr(t, err, "creating a pod that did not opt in")
	requireNoErr(t, retry(ctx, 60*time.Second, func() error {
		p, err := env.cs.CoreV1().Pods(ns).Get(ctx, "plain", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if p.Status.Phase != corev1.PodRunning {
			return errNotYet("pod plain is " + string(p.Status.Phase))
		}
		return nil
	}), "waiting for the plain pod to run")
}

// TestReinvocation: another webhook, ordered after secretfetch, adds IRSA
// settings to the app container; the API server reinvokes secretfetch, which
// copies them into the init container, so the pod still starts with its own
// identity.
func TestReinvocation(t *testing.T) {
	ns := newNamespace(t, "reinvoke")
	deployIRSAWebhook(t)
	id := ns + "/reinvoked"
	value := canary(t, "reinvoked")
	putSecret(t, id, value)
	ann := annotations(map[string]string{"value": id}, map[string]string{irsaWebhookAnnotation: irsaWebhookRole})
	rollOut(t, ns, deployment("app", 1, ann, podSpec(false, "")))
	assertValue(t, ns, "app", "value", value)

	p := runningPods(t, ns, "app")[0]
	if !hasEnv(p.Spec.Containers[0], "AWS_ROLE_ARN", irsaWebhookRole) {
		t.Fatalf("the test webhook did not add IRSA to the app container")
	}
	if !hasEnv(p.Spec.InitContainers[0], "AWS_ROLE_ARN", irsaWebhookRole) {
		t.Errorf("secretfetch-init did not get the IRSA settings added after secretfetch ran")
	}
	found := false
	for _, r := range assumedRoles(t) {
		found = found || (r.RoleARN == irsaWebhookRole && strings.Contains(r.Subject, ns))
	}
	if !found {
		t.Errorf("the init container did not assume %s", irsaWebhookRole)
	}
}

func hasEnv(c corev1.Container, name, value string) bool {
	for _, e := range c.Env {
		if e.Name == name && e.Value == value {
			return true
		}
	}
	return false
}
