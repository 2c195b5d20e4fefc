package mutate

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/secretfetch/secretfetch/internal/clip"
)

// Limits on what one pod may ask of the webhook. The webhook is shared by
// the whole cluster and runs with failurePolicy: Fail, so a pod is untrusted
// input: whatever it costs the webhook, every other opted-in pod waits for.
// The API server checks the annotations' total size (256 KiB) only after
// mutating admission, so these are the webhook's own bounds.
const (
	// MaxKeys caps the annotations under Prefix. A secret takes at most a
	// handful of keys (secret-, key-, version-stage-, mode-, pattern-), so
	// this leaves room for dozens of secrets.
	MaxKeys = 256
	// MaxAnnotationBytes caps the bytes of the keys and values under Prefix
	// together. Secret IDs are at most 2,048 bytes (an ARN), and the rest are
	// short, so real pods stay far below it.
	MaxAnnotationBytes = 64 << 10
	// MaxContainerEntries caps the comma-separated entries of
	// AnnotationContainers.
	MaxContainerEntries = 128
	// MaxContainers caps the containers and init containers of an opted-in
	// pod. The parser and Apply look each reader up by name, which is cheap
	// for real pods (a handful of containers) but quadratic in the
	// thousands of empty containers a crafted review can carry.
	MaxContainers = 256
	// MaxPlanBytes caps the encoded plan. It travels in one environment
	// variable, and Linux refuses a single variable over 128 KiB
	// (MAX_ARG_STRLEN) at exec time: the pod would be admitted, then fail
	// with "argument list too long". Half of that leaves room for the
	// refresh sidecar and the copied credentials.
	MaxPlanBytes = 64 << 10
	// MaxEnvEntries caps the env entries that Apply adds: every variable
	// (env-<name>) goes into every reader, so they are variables x readers,
	// and without secretfetch.io/containers every app container is a
	// reader. Past it the patch, and the work to make it, grow with the
	// product: under MaxContainers, 250 containers and 125 variables made
	// a patch of 4.8 MB and cost 109 MB to make it.
	MaxEnvEntries = 4096
)

// Bounds on a denial, so that building and logging one is linear in the
// problems found and small whatever the pod.
const (
	// maxCauses is how many problems a denial lists; the rest are counted.
	maxCauses = 20
	// maxCauseBytes bounds one problem's text (the value it quotes
	// included). The longest message the webhook writes is about 450 bytes.
	maxCauseBytes = 512
	// maxMessageBytes bounds the whole message: problems that would go past
	// it are counted, not listed.
	maxMessageBytes = 4 << 10
	// maxListed bounds a list of names quoted in one message.
	maxListed = 10
	// maxQuoted bounds one name or path that a message quotes: a problem
	// found per mount or env entry must not repeat a long one whole.
	maxQuoted = maxCauseBytes / 4
)

// checkLimits refuses, before the full parse, a pod whose secretfetch.io
// annotations are beyond the limits above. Its cost is one pass over the
// annotations, and it reports at most one problem: the limit exceeded.
func checkLimits(pod *corev1.Pod) *field.Error {
	keys, size := 0, 0
	for k, v := range pod.Annotations {
		if strings.HasPrefix(k, Prefix) {
			keys++
			size += len(k) + len(v)
		}
	}
	if keys > MaxKeys {
		return field.Invalid(annotationsPath, omit, fmt.Sprintf(
			"the pod has %d %s annotations; it may have at most %d", keys, Prefix, MaxKeys))
	}
	if size > MaxAnnotationBytes {
		return field.Invalid(annotationsPath, omit, fmt.Sprintf(
			"the %s annotations take %d bytes (keys and values); a pod may use at most %d", Prefix, size, MaxAnnotationBytes))
	}
	if n := len(pod.Spec.Containers) + len(pod.Spec.InitContainers); n > MaxContainers {
		return field.TooMany(field.NewPath("spec", "containers"), n, MaxContainers)
	}
	if v, ok := pod.Annotations[AnnotationContainers]; ok {
		if n := strings.Count(v, ",") + 1; n > MaxContainerEntries {
			return field.Invalid(annotationPath(AnnotationContainers), omit, fmt.Sprintf(
				"lists %d entries; it may list at most %d containers", n, MaxContainerEntries))
		}
	}
	return nil
}

// denialMessage joins the problems into one message, as field.ErrorList's
// aggregate did ("a" for one, "[a, b]" for more), but bounded: at most
// maxCauses problems of at most maxCauseBytes each and maxMessageBytes in
// all, then "and N more". Repeated problems are listed once. It returns the
// problems it listed. Its cost is linear in the problems: the aggregate's own
// de-duplication was quadratic in them.
func denialMessage(errs field.ErrorList) (string, field.ErrorList) {
	shown := make(field.ErrorList, 0, min(len(errs), maxCauses))
	texts := make([]string, 0, cap(shown))
	seen := make(map[string]bool, cap(shown))
	size, skipped := 0, 0
	for _, e := range errs {
		if len(shown) == maxCauses || size >= maxMessageBytes {
			skipped++
			continue
		}
		text := truncate(e.Error(), maxCauseBytes)
		if seen[text] {
			continue
		}
		if len(shown) > 0 && size+len(text) > maxMessageBytes {
			skipped++
			size = maxMessageBytes
			continue
		}
		seen[text] = true
		shown, texts = append(shown, e), append(texts, text)
		size += len(text) + len(", ")
	}
	var b strings.Builder
	b.WriteString("secretfetch: ")
	if len(texts) == 1 && skipped == 0 {
		b.WriteString(texts[0])
		return b.String(), shown
	}
	b.WriteByte('[')
	b.WriteString(strings.Join(texts, ", "))
	if skipped > 0 {
		fmt.Fprintf(&b, ", and %d more", skipped)
	}
	b.WriteByte(']')
	return b.String(), shown
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string { return clip.Marked(s, n, "...") }

// quoteList quotes names, separated by commas: the first maxListed of them,
// then how many more there are.
func quoteList(items []string) string {
	var b strings.Builder
	for i, s := range items {
		if i == maxListed {
			fmt.Fprintf(&b, " and %d more", len(items)-maxListed)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", truncate(s, maxQuoted))
	}
	return b.String()
}
