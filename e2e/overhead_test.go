//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
)

// BenchmarkInjectionOverhead measures what secretfetch adds to pod start-up:
// the time from creating a pod to seeing it Ready, for the same pod with and
// without injection (three secrets, IRSA credentials through the fake's STS).
// Pods are created one at a time, alternating, so both kinds see the same
// machine; it reports the medians and their difference.
//
//	go test -tags e2e -run '^$' -bench InjectionOverhead -benchtime 1x ./e2e/
func BenchmarkInjectionOverhead(b *testing.B) {
	const pods = 10
	ns := newNamespace(b, "overhead")
	for _, s := range []string{"a", "b", "c"} {
		putSecret(b, ns+"/"+s, canary(b, "overhead"))
	}
	injected := annotations(map[string]string{"a": ns + "/a", "b": ns + "/b", "c": ns + "/c"}, nil)

	compareStartup(b, ns, pods, "injection overhead", startupKind{"plain", nil}, startupKind{"injected", injected})
}

// startupKind is one of the two kinds of pod compareStartup starts: a name
// for its pods and metrics, and the pod's annotations.
type startupKind struct {
	name string
	ann  map[string]string
}

// compareStartup creates pods of kinds a and b in ns, one at a time and
// alternating, so that both see the same machine, and reports the median
// time from creation to Ready of each, and what b adds to a.
func compareStartup(b *testing.B, ns string, pods int, what string, ka, kb startupKind) {
	b.Helper()
	for b.Loop() {
		var ta, tb []time.Duration
		for i := range pods {
			ta = append(ta, timeToReady(b, ns, fmt.Sprintf("%s-%d", ka.name, i), ka.ann))
			tb = append(tb, timeToReady(b, ns, fmt.Sprintf("%s-%d", kb.name, i), kb.ann))
		}
		ma, mb := median(ta), median(tb)
		b.ReportMetric(ma.Seconds(), "s-"+ka.name+"-median")
		b.ReportMetric(mb.Seconds(), "s-"+kb.name+"-median")
		b.ReportMetric((mb - ma).Seconds(), "s-added")
		fmt.Fprintf(os.Stderr, "%s: %s median %s, %s median %s, added %s (%d pods each)\n", what,
			ka.name, ma.Round(time.Millisecond), kb.name, mb.Round(time.Millisecond), (mb - ma).Round(time.Millisecond), pods)
	}
}

// timeToReady creates a pod and returns the time until a watch sees it
// Ready. It deletes the pod afterwards.
func timeToReady(b *testing.B, ns, name string, ann map[string]string) time.Duration {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pods := env.cs.CoreV1().Pods(ns)
	w, err := pods.Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()})
	if err != nil {
		b.Fatalf("watching pod %s: %v", name, err)
	}
	defer w.Stop()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann}, Spec: podSpec(true, e2eRoleARN)}
	start := time.Now()
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		b.Fatalf("creating pod %s: %v", name, err)
	}
	defer func() {
		_ = pods.Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
	}()
	for ev := range w.ResultChan() {
		p, ok := ev.Object.(*corev1.Pod)
		if !ok || ev.Type == watch.Deleted {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				return time.Since(start)
			}
		}
	}
	b.Fatalf("pod %s never became Ready", name)
	return 0
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
