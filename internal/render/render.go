// Package render writes the top-level keys of a JSON-object secret as one
// file in a format that apps read: dotenv, json, properties or yaml.
//
// There is one writer per format and no I/O. Every value is written as a
// string: a JSON string as its characters, any other JSON value as its
// compact JSON text, as the key-<name> annotation does. Each format's
// quoting rules are in the comment of its writer and in the README; a key
// or value that a format cannot carry fails the whole rendering.
//
// A rendered file means only what the secret's author can already do: set
// the app's values. So a dotenv rendering refuses the keys that change how
// a process runs (ProcessKey), unless the plan allows those exact keys,
// and a properties rendering refuses "${", which properties readers expand.
//
// The keys of a secret are part of its value: whoever writes the value
// chooses them. An error names a key by its position (Error.Index), never
// by its text, and never holds a value.
package render

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/secretfetch/secretfetch/internal/plan"
)

// Codes of a rendering failure; init-fetch puts them in the termination
// message.
const (
	CodeNotObject        = "NotJSONObject"    // the value is not one JSON object
	CodeUnsupportedKey   = "UnsupportedKey"   // a key the format cannot carry
	CodeUnsupportedValue = "UnsupportedValue" // a value the format cannot carry
	CodeUnknownFormat    = "UnknownFormat"    // a format this init-fetch does not know
	// CodeProcessKey: a dotenv key that changes how a process runs
	// (ProcessKey), which the plan does not allow.
	CodeProcessKey = "ProcessKey"
)

// Error is a rendering failure. Err never holds a key or a value.
type Error struct {
	Code string
	// Index is the position of the key at fault among the object's
	// top-level keys, counted from 1 in the order they are written, or 0
	// when the whole value is at fault.
	Index int
	Err   error
}

func (e *Error) Error() string {
	if e.Index == 0 {
		return fmt.Sprintf("%s: %v", e.Code, e.Err)
	}
	return fmt.Sprintf("%s: key #%d: %v", e.Code, e.Index, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// ErrorCode is the code of an error of Render or FileData, for init-fetch's
// termination message and the refresh sidecar's log: its *Error's code, or
// CodeNotObject when it holds none.
func ErrorCode(err error) string {
	var re *Error
	if errors.As(err, &re) {
		return re.Code
	}
	return CodeNotObject
}

// entry is one top-level key and its value as a string.
type entry struct {
	key   string
	value []byte
	// isString tells a JSON string from another value's compact JSON, for
	// the json format.
	isString bool
}

// writer writes entries in one format into out, which has room for
// maxRendered(entries) bytes. allow lists the keys that the plan lets
// through although the format refuses them by default.
type writer func(out *bytes.Buffer, entries []entry, allow []string) error

var writers = map[plan.Format]writer{
	plan.FormatDotenv:     dotenv,
	plan.FormatJSON:       jsonObject,
	plan.FormatProperties: properties,
	plan.FormatYAML:       yaml,
}

// Render renders doc, a JSON object, in format f. allowKeys lists keys
// that the format refuses by default and the plan allows (plan.Secret's
// AllowKeys: ProcessKey names, for dotenv), compared exactly. The caller
// zeroes doc and the result after use; Render zeroes its own copies of the
// values.
func Render(f plan.Format, doc []byte, allowKeys []string) ([]byte, error) {
	w, ok := writers[f]
	if !ok {
		return nil, &Error{Code: CodeUnknownFormat, Err: fmt.Errorf("format %q is not one of dotenv, json, properties, yaml", f)}
	}
	entries, err := parseObject(doc)
	defer func() {
		for _, e := range entries {
			clear(e.value)
		}
	}()
	if err != nil {
		return nil, err
	}
	// The output holds the values too. It gets its whole room at once: a
	// bytes.Buffer that grows copies what it holds into a new array and
	// leaves the old one, values and all, to the garbage collector,
	// unzeroed. For the same reason a failed rendering clears what it wrote.
	buf := outBuffer(maxRendered(entries))
	out := bytes.NewBuffer(buf)
	if err := w(out, entries, allowKeys); err != nil {
		clear(buf[:cap(buf)])
		return nil, err
	}
	return out.Bytes(), nil
}

// outBuffer makes the empty buffer, of capacity size, that Render writes
// into; a test wraps it to see that the buffer never grew.
var outBuffer = func(size int) []byte { return make([]byte, 0, size) }

// maxRendered bounds the bytes that any format writes for entries. The
// widest escape is six bytes for one byte of input (a control character as
// \u00XX); every other is at most that ratio (\UXXXXXXXX for four bytes,
// a surrogate pair \uXXXX\uXXXX for four). Each entry adds at most 10
// bytes around them (YAML's explicit form: ? "k"\n: "v"\n), and the whole
// at most 3 ({}\n).
func maxRendered(entries []entry) int {
	n := 3
	for _, e := range entries {
		n += 6*(len(e.key)+len(e.value)) + 10
	}
	return n
}

// parseObject reads the top-level keys of a JSON object in their order. It
// refuses a key given twice (JSON decoders disagree on which one wins) and
// text that is not UTF-8 (encoding/json would quietly replace it). Its
// errors never quote the document: encoding/json's syntax errors hold the
// offending character, so only the offset is kept.
func parseObject(doc []byte) ([]entry, error) {
	notObject := func(format string, args ...any) error {
		return &Error{Code: CodeNotObject, Err: fmt.Errorf(format, args...)}
	}
	if !utf8.Valid(doc) {
		return nil, notObject("the value is not valid UTF-8 text, so it is not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, notObject("the value is not a JSON object%s; give format a secret whose value (or whose key-<name>) is one", offset(err))
	}
	var entries []entry
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return entries, notObject("the value is not valid JSON%s", offset(err))
		}
		key := tok.(string) // inside an object, a token before ':' is a key
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return entries, notObject("the value is not valid JSON%s", offset(err))
		}
		if seen[key] {
			clear(raw)
			return entries, &Error{Code: CodeUnsupportedKey, Index: len(entries) + 1, Err: errors.New("the key is given twice in the JSON object")}
		}
		seen[key] = true
		v, err := stringValue(raw)
		isString := raw[0] == '"'
		clear(raw)
		if err != nil {
			return entries, notObject("the value is not valid JSON%s", offset(err))
		}
		entries = append(entries, entry{key: key, value: v, isString: isString})
	}
	if _, err := dec.Token(); err != nil {
		return entries, notObject("the value is not valid JSON%s", offset(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return entries, notObject("the value holds more than one JSON object")
	}
	return entries, nil
}

// stringValue is a JSON string's characters, or any other value's compact
// JSON text.
func stringValue(raw json.RawMessage) ([]byte, error) {
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		return []byte(s), nil
	}
	var out bytes.Buffer
	out.Grow(len(raw))
	if err := json.Compact(&out, raw); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// offset describes a JSON error by its position only.
func offset(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf(" (syntax error at byte %d)", se.Offset)
	}
	return ""
}

// keyError is the failure of the i-th entry (from 0).
func keyError(code string, i int, format string, args ...any) error {
	return &Error{Code: code, Index: i + 1, Err: fmt.Errorf(format, args...)}
}

// CodeBinary is the failure code of a SecretBinary given a format.
const CodeBinary = "BinaryFormatValue"

// FileData returns what goes into the file of s: value itself without a
// format, else value rendered in s.Format into a new buffer (rendered is
// true, and the caller zeroes both). A SecretBinary cannot be rendered.
func FileData(s plan.Secret, value []byte, binary bool) (data []byte, rendered bool, err error) {
	if s.Format == "" {
		return value, false, nil
	}
	if binary {
		return nil, false, &Error{Code: CodeBinary, Err: fmt.Errorf("the secret holds SecretBinary, which cannot be rendered as %s", s.Format)}
	}
	data, err = Render(s.Format, value, s.AllowKeys)
	if err != nil {
		return nil, false, fmt.Errorf("rendering as %s: %w", s.Format, err)
	}
	return data, true, nil
}
