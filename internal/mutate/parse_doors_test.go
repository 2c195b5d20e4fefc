package mutate

import (
	"slices"
	"testing"

	"github.com/secretfetch/secretfetch/internal/grammar"
)

// FuzzGrammarAlone holds init-fetch's door (the grammar alone, from the
// annotations and the container names, as in the policy mode) to the
// webhook's: whatever the pod, every problem the grammar alone finds, the
// webhook reports too, in the same order; and a pod the webhook admits, the
// grammar alone admits with the same plan.
func FuzzGrammarAlone(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s.data, s.shape)
	}
	f.Fuzz(func(t *testing.T, data string, shape uint8) {
		pod := fuzzPod(shape, fuzzAnnotations(data))
		cfg := fuzzConfig(shape)
		if ok, _ := Requested(pod); !ok {
			return
		}
		inj, errs := Parse(pod, cfg.DefaultRegion, cfg.ParseOptions()...)
		settings := newParseSettings(cfg.ParseOptions())
		settings.DefaultRegion = cfg.DefaultRegion
		res, problems := grammar.Parse(grammarInput(pod), settings, nil)
		if len(errs) == 0 {
			if len(problems) > 0 {
				t.Fatalf("the webhook admits the pod, the grammar alone finds: %v", problems)
			}
			if res.Encoded != inj.encoded {
				t.Fatalf("the plans differ:\n grammar %s\n webhook %s", res.Encoded, inj.encoded)
			}
			return
		}
		webhook := make([]string, len(errs))
		for i, e := range errs {
			webhook[i] = e.Error()
		}
		i := 0
		for _, p := range problems {
			j := slices.Index(webhook[i:], p.Error())
			if j < 0 {
				t.Fatalf("the grammar alone finds a problem the webhook does not report (or not in this order): %s\nwebhook: %q", p.Error(), webhook)
			}
			i += j + 1
		}
	})
}
