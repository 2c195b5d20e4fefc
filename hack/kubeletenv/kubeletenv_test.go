package kubeletenv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	kubeletenv "k8s.io/kubernetes/pkg/kubelet/util/env"

	"github.com/secretfetch/secretfetch/internal/envfile"
)

// parse writes data to a file and asks the kubelet's parser for key, as the
// kubelet does when it starts a container with a fileKeyRef.
func parse(t *testing.T, data []byte, key string) (string, error) {
	t.Helper()
	file := filepath.Join(scratch(t), "secretfetch.env")
	if err := os.WriteFile(file, data, 0o400); err != nil {
		t.Fatal(err)
	}
	return kubeletenv.ParseEnv(file, key)
}

var scratchDirs = map[*testing.T]string{}

// scratch is one directory per test, reused: a new one per parse made the
// random test spend its time creating directories.
func scratch(t *testing.T) string {
	if d, ok := scratchDirs[t]; ok {
		return d
	}
	d := t.TempDir()
	scratchDirs[t] = d
	t.Cleanup(func() { delete(scratchDirs, t) })
	return d
}

// describe names a value by its length and a few properties, never its
// bytes: the values here are made up, but the habit is the rule.
func describe(v string) string {
	return fmt.Sprintf("%d-byte value (quote=%v cr=%v lf=%v)", len(v),
		strings.Contains(v, "'"), strings.Contains(v, "\r"), strings.Contains(v, "\n"))
}

// parserReads reports whether the kubelet hands back value unchanged from
// the entry Encode's format would write for it, checked without Encode.
func parserReads(t *testing.T, name, value string) bool {
	t.Helper()
	// A neighbour before and after, as in a real file. The parser stops at
	// the first entry of the key, so reading it back whole is enough.
	data := "BEFORE='b'\n" + name + "='" + value + "'\nAFTER='a'\n"
	got, err := parse(t, []byte(data), name)
	return err == nil && got == value
}

var hostile = []struct {
	name  string
	value string
	want  error // nil: Encode writes it and the kubelet reads it back
}{
	{"plain", "s3cr3t", nil},
	{"spaces around", "  padded\t ", nil},
	{"hash", "#not-a-comment # nor this", nil},
	{"equals", "a=b==c", nil},
	{"double quote and backslash", `say "hi" \n \' $HOME ${X} $(id) ` + "`id`", envfile.ErrQuote},
	{"double quote and backslash, no single quote", `say "hi" \n $HOME ${X} $(id) ` + "`id` \\", nil},
	{"new lines", "line one\nline two\n\nline four\n", nil},
	{"leading new line", "\nstarts on the next line", nil},
	{"only a new line", "\n", nil},
	{"PEM", "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n", nil},
	{"lone CR", "carriage\rreturn\r", nil},
	{"CR at the end", "ends with CR\r", nil},
	{"CRLF", "windows\r\nline", envfile.ErrCRLF},
	{"CR before the last new line", "x\r\n", envfile.ErrCRLF},
	{"single quote", "it's", envfile.ErrQuote},
	{"quote then comment", "a' # b", envfile.ErrQuote},
	{"unicode", "pässwörd ✓ 🔑", nil},
	{"not UTF-8", "\xff\xfe", envfile.ErrNotUTF8},
	{"NUL", "a\x00b", envfile.ErrNUL},
	{"empty", "", envfile.ErrEmpty},
	{"line at the limit", strings.Repeat("x", envfile.MaxLine-len("VAR='")-1), nil},
	{"line over the limit", strings.Repeat("x", envfile.MaxLine-len("VAR='")), envfile.ErrLongLine},
	{"second line at the limit", "a\n" + strings.Repeat("y", envfile.MaxLine-1), nil},
	{"second line over the limit", "a\n" + strings.Repeat("y", envfile.MaxLine), envfile.ErrLongLine},
	{"middle line at the limit", "a\n" + strings.Repeat("y", envfile.MaxLine) + "\nb", nil},
	{"middle line over the limit", "a\n" + strings.Repeat("y", envfile.MaxLine+1) + "\nb", envfile.ErrLongLine},
	{"AWS's largest value on one line", strings.Repeat("z", 64<<10), envfile.ErrLongLine},
	{"AWS's largest value in lines", strings.Repeat(strings.Repeat("z", 1023)+"\n", 64), nil},
}

// TestEncodeRoundTripsThroughKubelet: what Encode writes, the kubelet reads
// back unchanged, for every value at once in one file; and what Encode
// refuses for the parser's sake, the parser does mangle or refuse.
func TestEncodeRoundTripsThroughKubelet(t *testing.T) {
	var vars []envfile.Var
	want := map[string]string{}
	for i, tc := range hostile {
		name := fmt.Sprintf("V%02d", i) // as long as "VAR", for the line limits
		err := envfile.Check("VAR", []byte(tc.value))
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: Check = %v, want %v", tc.name, err, tc.want)
		}
		if err == nil {
			vars = append(vars, envfile.Var{Name: name, Value: []byte(tc.value)})
			want[name] = tc.value
		}
		// NUL, bytes that are not UTF-8 and the empty value are refused for
		// the runtime's sake and the kubelet's own "not found" rule; the
		// parser itself reads them.
		parserFault := tc.want != nil && !errors.Is(tc.want, envfile.ErrNUL) &&
			!errors.Is(tc.want, envfile.ErrNotUTF8) && !errors.Is(tc.want, envfile.ErrEmpty)
		if reads := parserReads(t, "VAR", tc.value); parserFault == reads {
			t.Errorf("%s: the kubelet reads the %s back: %v; Encode refuses it for the parser's sake: %v",
				tc.name, describe(tc.value), reads, parserFault)
		}
	}
	data, err := envfile.Encode(vars)
	if err != nil {
		t.Fatalf("Encode refused values that Check allows: %v", err)
	}
	for name, v := range want {
		got, err := parse(t, data, name)
		if err != nil {
			t.Errorf("kubelet's ParseEnv(%s): %v", name, err)
		} else if got != v {
			t.Errorf("kubelet's ParseEnv(%s) gave a %s, want the %s", name, describe(got), describe(v))
		}
	}
}

// TestCheckMatchesKubelet tries every value of up to three characters
// drawn from those that matter to the parser, and checks that Check refuses
// exactly the ones that the kubelet would not read back.
func TestCheckMatchesKubelet(t *testing.T) {
	alphabet := []string{"a", "'", "\r", "\n", "#", "=", " ", "\t", `\`, `"`, "é"}
	values := []string{""}
	for i := 0; i < len(values); i++ { // values grows while it is read
		prefix := values[i]
		if len([]rune(prefix)) == 3 {
			break
		}
		for _, c := range alphabet {
			values = append(values, prefix+c)
		}
	}
	for _, v := range values[1:] {
		err := envfile.Check("VAR", []byte(v))
		if reads := parserReads(t, "VAR", v); reads != (err == nil) {
			t.Errorf("%q: the kubelet reads it back: %v; Check: %v", v, reads, err)
		}
	}
}

// TestEncodeRefusesNamed: the error names every variable that cannot be
// carried, with the code, and holds no value.
func TestEncodeRefusesNamed(t *testing.T) {
	const value = "it's-a-secret"
	_, err := envfile.Encode([]envfile.Var{{Name: "OK", Value: []byte("fine")}, {Name: "DB_PASSWORD", Value: []byte(value)}})
	if err == nil {
		t.Fatal("Encode accepted a single quote")
	}
	var ve *envfile.ValueError
	if !errors.As(err, &ve) || ve.Name != "DB_PASSWORD" || !errors.Is(err, envfile.ErrQuote) {
		t.Errorf("error = %v, want a *ValueError for DB_PASSWORD", err)
	}
	if !strings.Contains(err.Error(), envfile.CodeUnsupportedValue) || bytes.Contains([]byte(err.Error()), []byte(value)) {
		t.Errorf("error %q lacks the code or holds the value", err)
	}
}

// FuzzCheckMatchesKubelet: for any value, Check refuses it for the parser's
// sake exactly when the kubelet would not read it back. (NUL, bytes that are
// not UTF-8 and the empty value are refused for other reasons.)
func FuzzCheckMatchesKubelet(f *testing.F) {
	for _, s := range []string{"a", "it's", "a\r\nb", "\n", "x\r", "#", " '", "a\nb'c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		err := envfile.Check("VAR", []byte(v))
		if errors.Is(err, envfile.ErrNUL) || errors.Is(err, envfile.ErrNotUTF8) || errors.Is(err, envfile.ErrEmpty) {
			return
		}
		if reads := parserReads(t, "VAR", v); reads != (err == nil) {
			t.Errorf("%q: the kubelet reads it back: %v; Check: %v", v, reads, err)
		}
	})
}
