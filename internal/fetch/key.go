package fetch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/secretfetch/secretfetch/internal/plan"
)

// extractKey returns the field at the dotted path key inside the JSON object
// doc: a JSON string as its raw characters (no quotes, escapes decoded), any
// other JSON value as compact JSON in its original key order.
//
// Its errors name the key and where the path broke off, never a value: JSON
// syntax errors are reported by offset only, because encoding/json puts the
// offending character into its message.
func extractKey(doc []byte, key string) ([]byte, string, error) {
	path := plan.KeyPath(key)
	cur := json.RawMessage(doc)
	// Every object level is decoded into RawMessages, which are copies; they
	// are zeroed on the way out, except for the one returned.
	var scratch []map[string]json.RawMessage
	defer func() {
		for _, m := range scratch {
			for _, v := range m {
				clear(v)
			}
		}
	}()
	for i, seg := range path {
		if !isObject(cur) {
			if i == 0 {
				return nil, CodeNotJSON, fmt.Errorf("key %q needs a JSON object in SecretString, and the value is not one", key)
			}
			return nil, CodeKeyNotFound, fmt.Errorf("key %q: %q is not a JSON object", key, strings.Join(path[:i], "."))
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(cur, &m); err != nil {
			return nil, CodeNotJSON, fmt.Errorf("key %q: the SecretString is not valid JSON%s", key, syntaxOffset(err))
		}
		scratch = append(scratch, m)
		next, ok := m[seg]
		if !ok {
			return nil, CodeKeyNotFound, fmt.Errorf("key %q: %q not found", key, strings.Join(path[:i+1], "."))
		}
		cur = next
	}

	cur = bytes.TrimSpace(cur)
	if len(cur) > 0 && cur[0] == '"' {
		var s string
		if err := json.Unmarshal(cur, &s); err != nil {
			return nil, CodeNotJSON, fmt.Errorf("key %q: the string is not valid JSON%s", key, syntaxOffset(err))
		}
		return []byte(s), "", nil
	}
	var out bytes.Buffer
	out.Grow(len(cur)) // one allocation, so no half-copied old buffer is left behind
	if err := json.Compact(&out, cur); err != nil {
		return nil, CodeNotJSON, fmt.Errorf("key %q: the value is not valid JSON%s", key, syntaxOffset(err))
	}
	return out.Bytes(), "", nil
}

// isObject reports whether raw holds a JSON object, by its first byte.
func isObject(raw json.RawMessage) bool {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	return len(raw) > 0 && raw[0] == '{'
}

// syntaxOffset describes a JSON error without its text.
func syntaxOffset(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf(" (syntax error at byte %d)", se.Offset)
	}
	return ""
}
