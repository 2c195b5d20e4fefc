package render

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// dotenv writes KEY='value' lines, which a POSIX shell reads with
// `set -a; . file` and dotenv parsers (godotenv, python-dotenv, Docker
// Compose) read too:
//   - a key is a shell variable name: [A-Za-z_][A-Za-z0-9_]*;
//   - a value is in single quotes, with no escapes: a shell and a dotenv
//     parser read it literally, '$', '\', '"', '#' and new lines included;
//   - so a value cannot hold a single quote; nor a NUL byte (a shell
//     variable cannot hold one); nor a carriage return before a line feed
//     (dotenv parsers turn CRLF into LF); nor end with a backslash (dotenv
//     parsers read \' as an escaped quote);
//   - a key that changes how a process runs (ProcessKey) is refused unless
//     allow names it: an app that sources the file exports every key.
func dotenv(out *bytes.Buffer, entries []entry, allow []string) error {
	for i, e := range entries {
		if !isShellName(e.key) {
			return keyError(CodeUnsupportedKey, i, "dotenv keys are shell variable names: letters, digits and '_', not starting with a digit")
		}
		if ProcessKey(e.key) && !slices.Contains(allow, e.key) {
			return keyError(CodeProcessKey, i, "the key is a variable that changes how a process runs "+
				"(the dynamic loader, a shell or a language runtime reads it; the README lists them), "+
				"and an app that sources the file would run with it; to write it anyway, list it in the pod's secretfetch.io/allow-keys-<name> annotation")
		}
		v := e.value
		var why string
		switch {
		case bytes.IndexByte(v, '\'') >= 0:
			why = "it contains a single quote, which dotenv's single quotes cannot carry"
		case bytes.IndexByte(v, 0) >= 0:
			why = "it contains a NUL byte, which a shell variable cannot hold"
		case bytes.Contains(v, []byte("\r\n")):
			why = "it contains a carriage return before a line feed, which dotenv parsers drop"
		case len(v) > 0 && v[len(v)-1] == '\\':
			why = "it ends with a backslash, which dotenv parsers read as escaping the closing quote"
		}
		if why != "" {
			return keyError(CodeUnsupportedValue, i, "the value cannot be written as dotenv: %s", why)
		}
		out.WriteString(e.key)
		out.WriteString("='")
		out.Write(v)
		out.WriteString("'\n")
	}
	return nil
}

func isShellName(s string) bool {
	for i := range len(s) {
		b := s[i]
		if !(b == '_' || 'A' <= b && b <= 'Z' || 'a' <= b && b <= 'z' || i > 0 && '0' <= b && b <= '9') {
			return false
		}
	}
	return s != ""
}

// jsonObject writes the object again, compact, with its keys in their order
// and a final new line: a string as a JSON string, any other value as its
// compact JSON. JSON carries every key and value.
func jsonObject(out *bytes.Buffer, entries []entry, _ []string) error {
	out.WriteByte('{')
	for i, e := range entries {
		if i > 0 {
			out.WriteByte(',')
		}
		writeJSONString(out, []byte(e.key))
		out.WriteByte(':')
		if e.isString {
			writeJSONString(out, e.value)
		} else {
			out.Write(e.value)
		}
	}
	out.WriteString("}\n")
	return nil
}

// writeJSONString quotes s as encoding/json does, without its HTML escapes
// and without making a string of it (which could not be zeroed).
func writeJSONString(out *bytes.Buffer, s []byte) { writeQuoted(out, s, jsonEscape) }

// jsonEscape writes \u00XX for the other control characters, and \u2028 and
// \u2029, which encoding/json escapes for JavaScript; the rest of Unicode is
// written as it is.
func jsonEscape(out *bytes.Buffer, r rune) bool {
	if r < 0x20 || r == 0x2028 || r == 0x2029 {
		fmt.Fprintf(out, `\u%04x`, r)
		return true
	}
	return false
}

// writeQuoted writes s in double quotes with the escapes that JSON and YAML
// share: '"' and '\' behind a backslash, and tab, new line and carriage
// return as \t, \n, \r. Each other character goes to escape, which writes
// the format's escape of it and returns true, or returns false to have it
// written as it is.
func writeQuoted(out *bytes.Buffer, s []byte, escape func(out *bytes.Buffer, r rune) bool) {
	out.WriteByte('"')
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRune(s[i:])
		switch {
		case r == '"' || r == '\\':
			out.WriteByte('\\')
			out.WriteByte(byte(r))
		case r == '\t':
			out.WriteString(`\t`)
		case r == '\n':
			out.WriteString(`\n`)
		case r == '\r':
			out.WriteString(`\r`)
		case !escape(out, r):
			out.Write(s[i : i+size])
		}
		i += size
	}
	out.WriteByte('"')
}

// properties writes key=value lines that java.util.Properties.load reads,
// from an InputStream (ISO 8859-1) or a Reader, the way Properties.store
// escapes them:
//   - '\', and '=', ':', '#', '!' are escaped with a backslash;
//   - tab, new line, carriage return and form feed are \t, \n, \r, \f;
//   - every other character outside printable ASCII is \uXXXX, in UTF-16
//     code units (a character beyond U+FFFF is a surrogate pair), so the
//     file is plain ASCII;
//   - a space is escaped everywhere in a key, and at the start of a value;
//   - a key or value that holds "${" is refused: readers that expand
//     placeholders (Spring's Environment and @Value, magiconair/properties
//     by default, Apache Commons Configuration) would replace it with
//     another property, an environment variable or a system property, and
//     no escape that Properties.load reads stops them (it removes the
//     backslash before they see the text).
//
// Every other key and value of a JSON object can be carried.
func properties(out *bytes.Buffer, entries []entry, _ []string) error {
	for i, e := range entries {
		if strings.Contains(e.key, "${") {
			return keyError(CodeUnsupportedKey, i, "the key holds \"${\", which properties readers such as Spring and magiconair/properties expand; use json or yaml")
		}
		if bytes.Contains(e.value, []byte("${")) {
			return keyError(CodeUnsupportedValue, i, "the value holds \"${\", which properties readers such as Spring and magiconair/properties expand; use json or yaml")
		}
		writeProperty(out, []byte(e.key), true)
		out.WriteByte('=')
		writeProperty(out, e.value, false)
		out.WriteByte('\n')
	}
	return nil
}

func writeProperty(out *bytes.Buffer, s []byte, isKey bool) {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRune(s[i:])
		switch {
		case r == ' ':
			if isKey || i == 0 {
				out.WriteByte('\\')
			}
			out.WriteByte(' ')
		case r == '\t':
			out.WriteString(`\t`)
		case r == '\n':
			out.WriteString(`\n`)
		case r == '\r':
			out.WriteString(`\r`)
		case r == '\f':
			out.WriteString(`\f`)
		case r == '\\' || r == '=' || r == ':' || r == '#' || r == '!':
			out.WriteByte('\\')
			out.WriteByte(byte(r))
		case r < 0x20 || r > 0x7e:
			for _, u := range utf16.Encode([]rune{r}) {
				fmt.Fprintf(out, `\u%04X`, u)
			}
		default:
			out.WriteByte(byte(r))
		}
		i += size
	}
}

// maxImplicitKey is how long a YAML key may be before the explicit "? key"
// form is needed: YAML limits an implicit key to 1024 characters.
const maxImplicitKey = 1000

// yaml writes a block mapping of double-quoted keys and values:
//   - '"' and '\' are escaped with a backslash;
//   - tab, new line and carriage return are \t, \n, \r;
//   - every other character outside printable ASCII is \uXXXX, or
//     \UXXXXXXXX beyond U+FFFF, so the file is plain ASCII and each entry
//     one line;
//   - a key longer than 1000 characters once quoted is written in the
//     explicit form (? "key" then : "value"), as YAML allows implicit keys
//     of up to 1024 characters only;
//   - an empty object is {}.
//
// Every key and value of a JSON object can be carried; every value reads
// back as a string.
func yaml(out *bytes.Buffer, entries []entry, _ []string) error {
	if len(entries) == 0 {
		out.WriteString("{}\n")
		return nil
	}
	var key bytes.Buffer
	for _, e := range entries {
		key.Reset()
		writeYAMLString(&key, []byte(e.key))
		if key.Len() > maxImplicitKey {
			out.WriteString("? ")
			out.Write(key.Bytes())
			out.WriteString("\n: ")
		} else {
			out.Write(key.Bytes())
			out.WriteString(": ")
		}
		writeYAMLString(out, e.value)
		out.WriteByte('\n')
	}
	return nil
}

func writeYAMLString(out *bytes.Buffer, s []byte) { writeQuoted(out, s, yamlEscape) }

// yamlEscape writes \uXXXX, or \UXXXXXXXX beyond U+FFFF, for every
// character outside printable ASCII.
func yamlEscape(out *bytes.Buffer, r rune) bool {
	if r >= 0x20 && r <= 0x7e {
		return false
	}
	if r > 0xffff {
		out.WriteString(`\U` + fmt.Sprintf("%08X", r))
	} else {
		out.WriteString(`\u` + fmt.Sprintf("%04X", r))
	}
	return true
}
