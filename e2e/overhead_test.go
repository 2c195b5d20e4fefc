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

	for b.Loop() {
		var plain, withInit []time.Duration
		for i := range pods {
			plain = append(plain, timeToReady(b, ns, fmt.Sprintf("plain-%d", i), nil))
			withInit = append(withInit, timeToReady(b, ns, fmt.Sprintf("injected-%d", i), injected))
		}
		mp, mi := median(plain), median(withInit)
		b.ReportMetric(mp.Seconds(), "s-plain-median")
		b.ReportMetric(mi.Seconds(), "s-injected-median")
		b.ReportMetric((mi - mp).Seconds(), "s-added")
		fmt.Fprintf(os.Stderr, "injection overhead: plain median %s, injected median %s, added %s (%d pods each)\n",
			mp.Round(time.Millisecond), mi.Round(time.Millisecond), (mi - mp).Round(time.Millisecond), pods)
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
