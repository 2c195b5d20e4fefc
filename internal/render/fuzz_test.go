package render

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/joho/godotenv"
	magiconair "github.com/magiconair/properties"
	yamlv3 "go.yaml.in/yaml/v3"

	"github.com/secretfetch/secretfetch/internal/plan"
)

// FuzzRender: for any key and value, each format either refuses the pair
// (naming the key by its position, without the key or the value) or writes
// what its parser reads back unchanged.
func FuzzRender(f *testing.F) {
	for _, s := range [][2]string{{"DB", "it's"}, {"a b", "x\r\ny"}, {"k", "ends\\"}, {"émoji🔑", "\u2028"}, {"", "\x00"}, {"K", "#'\"$"},
		{"PATH", "/tmp"}, {"LD_PRELOAD", "x"}, {"k", "${HOME}"}, {"${k}", "v"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, key, value string) {
		if !utf8.ValidString(key) || !utf8.ValidString(value) {
			return // Render refuses the whole document; TestRefusals covers it
		}
		doc, _ := json.Marshal(map[string]string{key: value})
		for _, format := range plan.Formats {
			out, err := Render(format, doc, nil)
			if err != nil {
				re, ok := err.(*Error)
				if !ok || re.Index != 1 || !strings.Contains(err.Error(), "key #1:") {
					t.Fatalf("%s: error of code %s does not name key #1", format, ErrorCode(err))
				}
				// Only a key or value with a control character can be told
				// apart from the words of a message; messages hold none.
				msg := err.Error()
				for _, s := range []string{key, value} {
					if strings.ContainsFunc(s, unicode.IsControl) && strings.Contains(msg, s) {
						t.Fatalf("%s: the error holds the key or the value", format)
					}
				}
				switch {
				case format == plan.FormatDotenv:
				case format == plan.FormatProperties && strings.Contains(key+value, "${"):
				default:
					t.Fatalf("%s refused a key or value it documents as carried (code %s)", format, re.Code)
				}
				continue
			}
			got, ok := readBack(t, format, out, key)
			if !ok {
				continue
			}
			if got != value {
				t.Fatalf("%s: %q reads back as a %d-byte value, want %d bytes", format, key, len(got), len(value))
			}
		}
	})
}

// readBack reads key from a rendering with a parser of its format; false
// when that parser is known not to carry the pair (see forMagiconair).
func readBack(t *testing.T, f plan.Format, out []byte, key string) (string, bool) {
	switch f {
	case plan.FormatDotenv:
		m, err := godotenv.UnmarshalBytes(out)
		if err != nil {
			t.Fatalf("godotenv: %v", err)
		}
		return m[key], true
	case plan.FormatJSON:
		var m map[string]string
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("encoding/json: %v", err)
		}
		return m[key], true
	case plan.FormatProperties:
		if key == "" || strings.ContainsFunc(key+string(out), func(r rune) bool { return r > 0xffff }) || strings.Contains(string(out), `\uD`) {
			return "", false
		}
		p, err := (&magiconair.Loader{Encoding: magiconair.ISO_8859_1, DisableExpansion: true}).LoadBytes(out)
		if err != nil {
			t.Fatalf("magiconair/properties: %v", err)
		}
		v, _ := p.Get(key)
		return v, true
	default:
		var m map[string]string
		if err := yamlv3.Unmarshal(out, &m); err != nil {
			t.Fatalf("yaml: %v", err)
		}
		return m[key], true
	}
}
