package mutate

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/secretfetch/secretfetch/internal/clip"
	"github.com/secretfetch/secretfetch/internal/grammar"
)

// Limits on what one pod may ask of the webhook: the grammar's, which
// explains each.
const (
	MaxKeys             = grammar.MaxKeys
	MaxAnnotationBytes  = grammar.MaxAnnotationBytes
	MaxContainerEntries = grammar.MaxContainerEntries
	MaxContainers       = grammar.MaxContainers
	MaxPlanBytes        = grammar.MaxPlanBytes
	MaxEnvEntries       = grammar.MaxEnvEntries
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
	// maxQuoted bounds one name or path that a message quotes: a problem
	// found per mount or env entry must not repeat a long one whole.
	maxQuoted = grammar.MaxQuoted
)

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
