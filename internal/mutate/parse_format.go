package mutate

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/secretfetch/secretfetch/internal/plan"
	"github.com/secretfetch/secretfetch/internal/render"
)

// parseAllowKeys reads allow-keys-<name>, v, for sec, whose Format is
// already parsed (other holds the secret's other annotations). It returns
// the keys, or the problems: the file must be a dotenv rendering, and each
// entry one of the keys that dotenv refuses (render.ProcessKey), listed
// once. Each problem quotes its own entry, never the whole list; the number
// of entries is checked before they are split, so the work is bounded by
// plan.MaxAllowKeys whatever the value.
func parseAllowKeys(sec *plan.Secret, v string, other map[string]string) ([]string, field.ErrorList) {
	ap := annotationPath(AllowKeysPrefix + sec.File)
	if sec.Format != plan.FormatDotenv {
		if f, ok := other[FormatPrefix]; !ok {
			return nil, field.ErrorList{field.Forbidden(ap, fmt.Sprintf(
				"only a dotenv rendering refuses keys, and there is no %s%s; set it to dotenv, or remove this annotation", FormatPrefix, sec.File))}
		} else if _, err := plan.ParseFormat(f); err == nil {
			return nil, field.ErrorList{field.Forbidden(ap, fmt.Sprintf(
				"only a dotenv rendering refuses keys, and %s%s is %q; remove this annotation", FormatPrefix, sec.File, f))}
		}
		return nil, nil // the bad format- value is denied already
	}
	if n := strings.Count(v, ",") + 1; n > plan.MaxAllowKeys {
		return nil, field.ErrorList{field.Invalid(ap, fmt.Sprintf("<%d entries>", n),
			fmt.Sprintf("at most %d keys may be listed", plan.MaxAllowKeys))}
	}
	var errs field.ErrorList
	var keys []string
	emptyReported := false
	for _, raw := range strings.Split(v, ",") {
		k := strings.TrimSpace(raw)
		switch {
		case k == "":
			if !emptyReported {
				errs = append(errs, field.Invalid(ap, truncate(v, maxQuoted), "an entry is empty; list key names separated by commas"))
				emptyReported = true
			}
		case plan.ValidateAllowKey(k) != nil:
			errs = append(errs, field.Invalid(ap, truncate(k, maxQuoted),
				"not a shell variable name: use letters, digits and '_', not starting with a digit"))
		case !render.ProcessKey(k):
			errs = append(errs, field.Invalid(ap, truncate(k, maxQuoted),
				"a dotenv rendering writes this key anyway; list only keys that change how a process runs (the README lists them), such as PATH or NODE_OPTIONS"))
		case slices.Contains(keys, k):
			errs = append(errs, field.Duplicate(ap, k))
		default:
			keys = append(keys, k)
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return keys, nil
}
