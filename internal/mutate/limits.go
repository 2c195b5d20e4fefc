package mutate

import (
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

// Bounds on a denial (the grammar's, which explains each).
const (
	maxCauses       = grammar.MaxCauses
	maxCauseBytes   = grammar.MaxCauseBytes
	maxMessageBytes = grammar.MaxMessageBytes
	// maxQuoted bounds one name or path that a message quotes: a problem
	// found per mount or env entry must not repeat a long one whole.
	maxQuoted = grammar.MaxQuoted
)

// denialMessage joins the problems into one bounded message (see
// grammar.Message), and returns the problems it listed.
func denialMessage(errs field.ErrorList) (string, field.ErrorList) {
	msg, shown := grammar.Message(errs)
	return "secretfetch: " + msg, shown
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string { return clip.Marked(s, n, "...") }
