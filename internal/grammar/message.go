package grammar

import (
	"fmt"
	"strings"
)

// Bounds on a message that lists problems, so that building and logging
// one is linear in the problems found and small whatever the pod.
const (
	// MaxCauses is how many problems a message lists; the rest are counted.
	MaxCauses = 20
	// MaxCauseBytes bounds one problem's text (the value it quotes
	// included). The longest message the grammar writes is about 450 bytes.
	MaxCauseBytes = 512
	// MaxMessageBytes bounds the whole message: problems that would go past
	// it are counted, not listed.
	MaxMessageBytes = 4 << 10
)

// Message joins the problems into one text, as field.ErrorList's aggregate
// did ("a" for one, "[a, b]" for more), but bounded: at most MaxCauses
// problems of at most MaxCauseBytes each and MaxMessageBytes in all, then
// "and N more". Repeated problems are listed once. It returns the problems
// it listed. Its cost is linear in the problems: the aggregate's own
// de-duplication was quadratic in them. The webhook's denial and
// init-fetch's termination message are "secretfetch: " and this text.
func Message[E interface{ Error() string }](errs []E) (string, []E) {
	shown := make([]E, 0, min(len(errs), MaxCauses))
	texts := make([]string, 0, cap(shown))
	seen := make(map[string]bool, cap(shown))
	size, skipped := 0, 0
	for _, e := range errs {
		if len(shown) == MaxCauses || size >= MaxMessageBytes {
			skipped++
			continue
		}
		text := Truncate(e.Error(), MaxCauseBytes)
		if seen[text] {
			continue
		}
		if len(shown) > 0 && size+len(text) > MaxMessageBytes {
			skipped++
			size = MaxMessageBytes
			continue
		}
		seen[text] = true
		shown, texts = append(shown, e), append(texts, text)
		size += len(text) + len(", ")
	}
	if len(texts) == 1 && skipped == 0 {
		return texts[0], shown
	}
	var b strings.Builder
	b.WriteByte('[')
	b.WriteString(strings.Join(texts, ", "))
	if skipped > 0 {
		fmt.Fprintf(&b, ", and %d more", skipped)
	}
	b.WriteByte(']')
	return b.String(), shown
}

// ParseError is a pod's problems as one error, for a caller that cannot
// deny the pod but must fail with the webhook's message: init-fetch, in the
// policy mode.
type ParseError struct {
	Problems ErrorList
}

// Error is the bounded list of the problems (Message).
func (e *ParseError) Error() string {
	msg, _ := Message(e.Problems)
	return msg
}
