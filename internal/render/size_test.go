package render

import (
	"fmt"
	"strings"
	"testing"

	"github.com/secretfetch/secretfetch/internal/plan"
)

// TestMaxSize renders, in every format, the JSON objects that expand the
// most: characters that every format escapes at three times their JSON
// size, nested values that yaml quotes again, many small members, and
// spaces and separators that properties escapes. No rendering exceeds
// MaxSize of its input, and the worst comes close to it, so the bound is
// neither broken nor loose.
func TestMaxSize(t *testing.T) {
	const n = 64 << 10 // AWS's largest secret
	fill := func(unit string, budget int) string {
		return strings.Repeat(unit, budget/len(unit))
	}
	docs := map[string]string{
		"é in a value":       `{"k":"` + fill("é", n-10) + `"}`,
		"é in a key":         `{"` + fill("é", n-10) + `":""}`,
		"astral characters":  `{"k":"` + fill("😀", n-10) + `"}`,
		"form feeds":         `{"k":"` + fill(`\f`, n-10) + `"}`,
		"line separators":    `{"k":"` + fill("\u2028", n-10) + `"}`,
		"nested strings":     `{"k":[` + strings.TrimSuffix(fill(`"\f",`, n-10), ",") + `]}`,
		"nested é":           `{"k":["` + fill("é", n-12) + `"]}`,
		"many small members": `{` + strings.TrimSuffix(membersOf(n-2), ",") + `}`,
		"separators":         `{"k":"` + fill(" =:#!", n-10) + `"}`,
		"empty object":       `{}`,
	}
	worst := 0.0
	for name, doc := range docs {
		if len(doc) > n {
			t.Fatalf("%s: the document is %d bytes, over %d", name, len(doc), n)
		}
		for _, f := range plan.Formats {
			out, _, err := FileData(plan.Secret{File: "f", ID: "x", Format: f}, []byte(doc), false)
			if err != nil {
				continue // a format that can't carry it writes nothing
			}
			if len(out) > MaxSize(len(doc)) {
				t.Errorf("%s as %s: %d bytes from %d, over MaxSize's %d", name, f, len(out), len(doc), MaxSize(len(doc)))
			}
			if r := float64(len(out)) / float64(len(doc)); r > worst {
				worst = r
			}
		}
	}
	if worst < MaxExpansion-0.1 {
		t.Errorf("the worst rendering is %.2f times its input, well under MaxExpansion (%d): lower the bound", worst, MaxExpansion)
	}
	t.Logf("worst expansion %.3f", worst)
}

// membersOf makes "kN":"", members up to n bytes.
func membersOf(n int) string {
	var b strings.Builder
	for i := 0; b.Len() < n-16; i++ {
		fmt.Fprintf(&b, `"k%d":"",`, i)
	}
	return b.String()
}
