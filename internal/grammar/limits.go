package grammar

import (
	"fmt"
	"strings"

	"github.com/secretfetch/secretfetch/internal/clip"
)

// Limits on what one pod may ask. The webhook is shared by the whole cluster
// and runs with failurePolicy: Fail, so a pod is untrusted input: whatever it
// costs the webhook, every other opted-in pod waits for. The API server
// checks the annotations' total size (256 KiB) only after mutating
// admission, so these are the grammar's own bounds.
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
	// pod. The parser and the mutation look each reader up by name, which is
	// cheap for real pods (a handful of containers) but quadratic in the
	// thousands of empty containers a crafted review can carry.
	MaxContainers = 256
	// MaxPlanBytes caps the encoded plan. It travels in one environment
	// variable, and Linux refuses a single variable over 128 KiB
	// (MAX_ARG_STRLEN) at exec time: the pod would be admitted, then fail
	// with "argument list too long". Half of that leaves room for the
	// refresh sidecar and the copied credentials.
	MaxPlanBytes = 64 << 10
	// MaxEnvEntries caps the env entries that the mutation adds: every
	// variable (env-<name>) goes into every reader, so they are variables x
	// readers, and without secretfetch.io/containers every app container is
	// a reader. Past it the patch, and the work to make it, grow with the
	// product: under MaxContainers, 250 containers and 125 variables made a
	// patch of 4.8 MB and cost 109 MB to make it.
	MaxEnvEntries = 4096
)

// Bounds on what one message quotes, so that a problem's text stays small
// whatever the pod.
const (
	// MaxQuoted bounds one name or path that a message quotes: a problem
	// found per mount or env entry must not repeat a long one whole.
	MaxQuoted = 512 / 4
	// maxListed bounds a list of names quoted in one message.
	maxListed = 10
)

// CheckLimits refuses, before the full parse, a pod whose secretfetch.io
// annotations, or containers, are beyond the limits above. Its cost is one
// pass over the annotations, and it reports at most one problem: the limit
// exceeded.
func CheckLimits(in Input) *Error {
	keys, size := 0, 0
	for k, v := range in.Annotations {
		if strings.HasPrefix(k, Prefix) {
			keys++
			size += len(k) + len(v)
		}
	}
	if keys > MaxKeys {
		return invalid(AnnotationsField, Omit, fmt.Sprintf(
			"the pod has %d %s annotations; it may have at most %d", keys, Prefix, MaxKeys))
	}
	if size > MaxAnnotationBytes {
		return invalid(AnnotationsField, Omit, fmt.Sprintf(
			"the %s annotations take %d bytes (keys and values); a pod may use at most %d", Prefix, size, MaxAnnotationBytes))
	}
	if n := len(in.Containers) + len(in.InitContainers); n > MaxContainers {
		return tooMany("spec.containers", n, MaxContainers)
	}
	if v, ok := in.Annotations[AnnotationContainers]; ok {
		if n := strings.Count(v, ",") + 1; n > MaxContainerEntries {
			return invalid(annotation(AnnotationContainers), Omit, fmt.Sprintf(
				"lists %d entries; it may list at most %d containers", n, MaxContainerEntries))
		}
	}
	return nil
}

// Truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func Truncate(s string, n int) string { return clip.Marked(s, n, "...") }

// QuoteList quotes names, separated by commas: the first ten of them, then
// how many more there are.
func QuoteList(items []string) string {
	var b strings.Builder
	for i, s := range items {
		if i == maxListed {
			fmt.Fprintf(&b, " and %d more", len(items)-maxListed)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", Truncate(s, MaxQuoted))
	}
	return b.String()
}
