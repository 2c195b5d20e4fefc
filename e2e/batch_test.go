//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// batchCalls counts the fake's BatchGetSecretValue calls that name any
// secret under prefix, and its GetSecretValue calls for one.
func batchCalls(t testing.TB, prefix string) (batch, single int) {
	t.Helper()
	for _, r := range fakeRequests(t) {
		switch {
		case r.Operation == "BatchGetSecretValue" && slices.ContainsFunc(r.SecretIDs, func(id string) bool { return strings.HasPrefix(id, prefix) }):
			batch++
		case r.Operation == "GetSecretValue" && strings.HasPrefix(r.SecretID, prefix):
			single++
		}
	}
	return batch, single
}

// TestBatch: a pod with 25 secrets in batch mode starts with its files from
// 2 BatchGetSecretValue calls (20 and 5 secrets) and no GetSecretValue, as
// the fake counts them.
func TestBatch(t *testing.T) {
	ns := newNamespace(t, "batch")
	secrets := map[string]string{}
	values := map[string]string{}
	for i := range 25 {
		name, id := fmt.Sprintf("s%02d", i), fmt.Sprintf("%s/s%02d", ns, i)
		values[name] = canary(t, name)
		putSecret(t, id, values[name])
		secrets[name] = id
	}
	rollOut(t, ns, deployment("app", 1, annotations(secrets, map[string]string{"secretfetch.io/batch": "true"}), podSpec(true, e2eRoleARN)))
	pods := runningPods(t, ns, "app")
	if len(pods) != 1 {
		t.Fatalf("%d running pods, want 1", len(pods))
	}
	l := readSecrets(t, ns, pods[0].Name)
	for name, want := range values {
		f, ok := l.file(name)
		if !ok || string(f.Value) != want {
			t.Errorf("file %s: present %v, %d bytes; want its secret's %d bytes", name, ok, len(f.Value), len(want))
		}
	}
	if batch, single := batchCalls(t, ns+"/"); batch != 2 || single != 0 {
		t.Errorf("the fake saw %d BatchGetSecretValue and %d GetSecretValue calls for the pod's 25 secrets, want 2 and 0", batch, single)
	}
}

// TestBatchMissing: a batch that reports one secret missing fails the pod
// closed, and the termination message names that secret.
func TestBatchMissing(t *testing.T) {
	ns := newNamespace(t, "batchmissing")
	putSecret(t, ns+"/a", canary(t, "a"))
	putSecret(t, ns+"/b", canary(t, "b"))
	missing := ns + "/not-there"
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Annotations: annotations(
			map[string]string{"a": ns + "/a", "b": ns + "/b", "gone": missing}, map[string]string{"secretfetch.io/batch": "true"})},
		Spec: podSpec(true, e2eRoleARN),
	}
	_, err := env.cs.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{})
	requireNoErr(t, err, "creating the pod")
	term := waitInitFailed(t, ns, "app")
	if !strings.Contains(term.Message, missing) || !strings.Contains(term.Message, "ResourceNotFoundException") ||
		!strings.Contains(term.Message, "1 of 3 secrets failed") {
		t.Errorf("termination message %q, want 1 of 3 failed, naming %s with ResourceNotFoundException", term.Message, missing)
	}
	if batch, single := batchCalls(t, ns+"/"); batch < 1 || single != 0 {
		t.Errorf("the fake saw %d BatchGetSecretValue and %d GetSecretValue calls, want batches only: a missing secret is not asked again alone", batch, single)
	}
}
