package render

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/joho/godotenv"
	magiconair "github.com/magiconair/properties"
	yamlv3 "go.yaml.in/yaml/v3"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/secretfetch/secretfetch/internal/plan"
)

// describe names a value by its size, never its bytes: a habit kept even
// for made-up values.
func describe(v string) string { return fmt.Sprintf("a %d-byte value", len(v)) }

// hostileKeys can be carried by json, properties and yaml; shellKeys by
// dotenv too.
var (
	shellKeys   = []string{"DB_PASSWORD", "_x", "a1", "export", "PATHX"}
	hostileKeys = append(slices.Clone(shellKeys),
		"db.password", "key with spaces", "k=v:x#!", " lead", "trail ", "tab\tkey", "nl\nkey", "cr\rkey",
		"émoji🔑", "", `back\slash`, `"quoted"`, "'single'", "- dash", "? q", ": colon", "null", "true", "~",
		"*anchor", "&a", "!tag", "%dir", "@", "`", "#hash", "\u2028", "\x7f", "\x01", "ü",
		strings.Repeat("k", 2000), strings.Repeat("é", 600))
)

// shellValues can be carried by dotenv, json and yaml; hostileValues by
// json and yaml; propertyValues, which hold no "${", by properties.
var (
	shellValues = []string{"", "plain", "  leading and trailing  ", "multi\nline\n", "\nfirst", `quote"s and \ back \n`,
		"$HOME ${X} $(id) `id`", "$HOME $(id) `id` {x} $ {y} $", "#hash", " # not a comment", "=eq", "tab\t", "lone\rcr", "ünïcödé", "🔑 key", "\u2028\u2029",
		"\u0085", "\x7f", "\x01\x1b", "null", "true", "123", "- item", "key: value", "[a]", "{b}", "---", "...",
		"-----BEGIN KEY-----\nMIIB\n-----END KEY-----\n", strings.Repeat("v", 60000)}
	hostileValues  = append(slices.Clone(shellValues), "it's", "ends\\", "crlf\r\nline", "nul\x00byte", "\r\n")
	propertyValues = slices.DeleteFunc(slices.Clone(hostileValues), func(v string) bool { return strings.Contains(v, "${") })
)

// object builds a JSON object of every key with one of the values, and
// returns the strings each key must read back as.
func object(t *testing.T, keys, values []string) ([]byte, map[string]string) {
	t.Helper()
	var b bytes.Buffer
	want := map[string]string{}
	b.WriteString("{ ")
	for i, k := range keys {
		if i > 0 {
			b.WriteString(" , ")
		}
		kj, _ := json.Marshal(k)
		v := values[i%len(values)]
		vj, _ := json.Marshal(v)
		fmt.Fprintf(&b, "%s : %s", kj, vj)
		want[k] = v
	}
	// The values that remain, under keys of their own, and the non-string
	// values, which are written as compact JSON.
	for i := len(keys); i < len(values); i++ {
		k := fmt.Sprintf("%s_%d", keys[0], i)
		vj, _ := json.Marshal(values[i])
		fmt.Fprintf(&b, ", %q: %s", k, vj)
		want[k] = values[i]
	}
	for k, v := range map[string]string{"n_int": " 5432", "n_float": "1.5e3", "n_bool": "true", "n_null": "null", "n_obj": `{ "a" : [1, 2, {"b": "c d"}] }`} {
		fmt.Fprintf(&b, ", %q: %s", keys[0]+k, v)
		var c bytes.Buffer
		if err := json.Compact(&c, []byte(v)); err != nil {
			t.Fatal(err)
		}
		want[keys[0]+k] = c.String()
	}
	b.WriteString(" }")
	return b.Bytes(), want
}

func render(t *testing.T, f plan.Format, doc []byte) []byte {
	t.Helper()
	out, err := Render(f, doc, nil)
	if err != nil {
		t.Fatalf("Render(%s): %v", f, err)
	}
	return out
}

func compare(t *testing.T, reader string, got, want map[string]string) {
	t.Helper()
	for k, v := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("%s: key %q is missing", reader, k)
		} else if g != v {
			t.Errorf("%s: key %q reads back as %s, want %s", reader, k, describe(g), describe(v))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: unexpected key %q", reader, k)
		}
	}
}

func TestDotenvThroughShell(t *testing.T) {
	doc, want := object(t, shellKeys, shellValues)
	file := filepath.Join(t.TempDir(), "app.env")
	if err := os.WriteFile(file, render(t, plan.FormatDotenv, doc), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", `set -a; . "$1"; exec env -0`, "sh", file)
	cmd.Env = []string{}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sourcing the file in sh: %v", err)
	}
	got := map[string]string{}
	for _, kv := range strings.Split(string(out), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			if _, ours := want[k]; ours {
				got[k] = v
			}
		}
	}
	compare(t, "sh", got, want)
}

func TestDotenvThroughGodotenv(t *testing.T) {
	doc, want := object(t, shellKeys, shellValues)
	got, err := godotenv.UnmarshalBytes(render(t, plan.FormatDotenv, doc))
	if err != nil {
		t.Fatalf("godotenv: %v", err)
	}
	compare(t, "godotenv", got, want)
}

func TestJSONRoundTrip(t *testing.T) {
	doc, want := object(t, hostileKeys, hostileValues)
	out := render(t, plan.FormatJSON, doc)
	if !bytes.HasSuffix(out, []byte("}\n")) || bytes.Count(out, []byte("\n")) != 1 {
		t.Errorf("the json rendering is not one compact line")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("encoding/json: %v", err)
	}
	got := map[string]string{}
	for k, raw := range m {
		if raw[0] == '"' {
			var s string
			_ = json.Unmarshal(raw, &s)
			got[k] = s
		} else {
			got[k] = string(raw) // non-strings keep their type and compact form
		}
	}
	compare(t, "encoding/json", got, want)
}

// magiconair/properties decodes \uXXXX one code unit at a time, so it
// cannot read back a character beyond U+FFFF, and it refuses the empty key;
// java.util.Properties reads both, so those are left to the Java test.
func forMagiconair(s []string, isKey bool) []string {
	return slices.DeleteFunc(slices.Clone(s), func(v string) bool {
		return isKey && v == "" || strings.ContainsFunc(v, func(r rune) bool { return r > 0xffff })
	})
}

func TestPropertiesThroughMagiconair(t *testing.T) {
	doc, want := object(t, forMagiconair(hostileKeys, true), forMagiconair(propertyValues, false))
	l := &magiconair.Loader{Encoding: magiconair.ISO_8859_1, DisableExpansion: true}
	p, err := l.LoadBytes(render(t, plan.FormatProperties, doc))
	if err != nil {
		t.Fatalf("magiconair/properties: %v", err)
	}
	compare(t, "magiconair/properties", p.Map(), want)
}

// javaReader loads a properties file with java.util.Properties.load, from
// an InputStream as Java reads ISO 8859-1, and prints each key and value as
// hex of their UTF-8 bytes.
const javaReader = `
import java.io.*;
import java.nio.charset.StandardCharsets;
import java.util.*;
public class Load {
  static String hex(String s) {
    StringBuilder b = new StringBuilder();
    for (byte x : s.getBytes(StandardCharsets.UTF_8)) b.append(String.format("%02x", x));
    return b.toString();
  }
  public static void main(String[] a) throws Exception {
    Properties p = new Properties();
    try (InputStream in = new FileInputStream(a[0])) { p.load(in); }
    for (String k : p.stringPropertyNames()) System.out.println(hex(k) + " " + hex(p.getProperty(k)));
  }
}
`

func TestPropertiesThroughJava(t *testing.T) {
	java, err := exec.LookPath("java")
	if err != nil {
		t.Skip("no java on this machine")
	}
	doc, want := object(t, hostileKeys, propertyValues)
	dir := t.TempDir()
	file, src := filepath.Join(dir, "app.properties"), filepath.Join(dir, "Load.java")
	if err := os.WriteFile(file, render(t, plan.FormatProperties, doc), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, []byte(javaReader), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(java, src, file).Output()
	if err != nil {
		t.Fatalf("java: %v", err)
	}
	got := map[string]string{}
	// Not TrimSpace: the empty key's line starts with the space.
	for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		kh, vh, _ := strings.Cut(line, " ")
		k, err1 := hex.DecodeString(kh)
		v, err2 := hex.DecodeString(vh)
		if err1 != nil || err2 != nil {
			t.Fatalf("reading java's output line of %d bytes", len(line))
		}
		got[string(k)] = string(v)
	}
	compare(t, "java.util.Properties", got, want)
}

func TestYAMLRoundTrip(t *testing.T) {
	doc, want := object(t, hostileKeys, hostileValues)
	out := render(t, plan.FormatYAML, doc)
	var v3 map[string]string
	if err := yamlv3.Unmarshal(out, &v3); err != nil {
		t.Fatalf("go.yaml.in/yaml/v3: %v", err)
	}
	compare(t, "go.yaml.in/yaml/v3", v3, want)
	var sigs map[string]string
	if err := sigsyaml.Unmarshal(out, &sigs); err != nil {
		t.Fatalf("sigs.k8s.io/yaml: %v", err)
	}
	compare(t, "sigs.k8s.io/yaml", sigs, want)
}

func TestEmptyObject(t *testing.T) {
	for f, want := range map[plan.Format]string{plan.FormatDotenv: "", plan.FormatJSON: "{}\n", plan.FormatProperties: "", plan.FormatYAML: "{}\n"} {
		if got := string(render(t, f, []byte(" {} "))); got != want {
			t.Errorf("Render(%s, {}) = %q, want %q", f, got, want)
		}
	}
	var m map[string]string
	if err := yamlv3.Unmarshal([]byte("{}\n"), &m); err != nil || m == nil || len(m) != 0 {
		t.Errorf("yaml {} reads as %v, %v; want an empty mapping", m, err)
	}
}

// TestExactOutput pins each format's quoting, as the README documents it.
func TestExactOutput(t *testing.T) {
	doc := []byte(`{"a b":"x=y: #!\\ é🔑\n\t\"q\"","n":5,"DB":"  it is \"$HOME\""}`)
	tests := []struct {
		f    plan.Format
		doc  []byte
		want string
	}{
		{plan.FormatJSON, doc, `{"a b":"x=y: #!\\ é🔑\n\t\"q\"","n":5,"DB":"  it is \"$HOME\""}` + "\n"},
		{plan.FormatProperties, doc, `a\ b=x\=y\: \#\!\\ \u00E9\uD83D\uDD11\n\t"q"` + "\nn=5\n" + `DB=\  it is "$HOME"` + "\n"},
		{plan.FormatYAML, doc, `"a b": "x=y: #!\\ \u00E9\U0001F511\n\t\"q\""` + "\n" + `"n": "5"` + "\n" + `"DB": "  it is \"$HOME\""` + "\n"},
		{plan.FormatDotenv, []byte(`{"DB":"  it is \"$HOME\"\nline 2","N":5}`), "DB='  it is \"$HOME\"\nline 2'\nN='5'\n"},
	}
	for _, tt := range tests {
		if got := string(render(t, tt.f, tt.doc)); got != tt.want {
			t.Errorf("Render(%s):\n got %s\nwant %s", tt.f, got, tt.want)
		}
	}
}

func TestYAMLLongKeyIsExplicit(t *testing.T) {
	key := strings.Repeat("k", 1200)
	out := string(render(t, plan.FormatYAML, []byte(`{"`+key+`":"v","short":"w"}`)))
	if want := "? \"" + key + "\"\n: \"v\"\n\"short\": \"w\"\n"; out != want {
		t.Errorf("Render(yaml) of a long key = %q, want the explicit form", out)
	}
}

// TestRefusals: what a format cannot carry fails closed, naming the key by
// its position and never the key or the value: keys are part of the value.
func TestRefusals(t *testing.T) {
	const secret = "s3cr3t-value"
	tests := []struct {
		name string
		f    plan.Format
		doc  string
		code string
		pos  int
	}{
		{"dotenv key with a dot", plan.FormatDotenv, `{"KEY_ONE":"x","key.name.two":"` + secret + `"}`, CodeUnsupportedKey, 2},
		{"dotenv key with a digit first", plan.FormatDotenv, `{"1KEY_NAME":"` + secret + `"}`, CodeUnsupportedKey, 1},
		{"dotenv empty key", plan.FormatDotenv, `{"":"` + secret + `"}`, CodeUnsupportedKey, 1},
		{"dotenv process key", plan.FormatDotenv, `{"KEY_ONE":"x","KEY_TWO":"y","LD_PRELOAD":"` + secret + `"}`, CodeProcessKey, 3},
		{"dotenv single quote", plan.FormatDotenv, `{"OK":"fine","KEY_NAME":"it's ` + secret + `"}`, CodeUnsupportedValue, 2},
		{"dotenv NUL", plan.FormatDotenv, `{"KEY_NAME":"` + secret + `\u0000"}`, CodeUnsupportedValue, 1},
		{"dotenv CRLF", plan.FormatDotenv, `{"KEY_NAME":"` + secret + `\r\n"}`, CodeUnsupportedValue, 1},
		{"dotenv trailing backslash", plan.FormatDotenv, `{"KEY_NAME":"` + secret + `\\"}`, CodeUnsupportedValue, 1},
		{"properties placeholder in a value", plan.FormatProperties, `{"KEY_ONE":"x","KEY_NAME":"` + secret + `${HOME}"}`, CodeUnsupportedValue, 2},
		{"properties placeholder in a key", plan.FormatProperties, `{"KEY_${NAME}":"` + secret + `"}`, CodeUnsupportedKey, 1},
		{"duplicate key", plan.FormatJSON, `{"KEY_NAME":"` + secret + `","OTHER":"x","KEY_NAME":"` + secret + `"}`, CodeUnsupportedKey, 3},
		{"array", plan.FormatYAML, `["` + secret + `"]`, CodeNotObject, 0},
		{"string", plan.FormatYAML, `"` + secret + `"`, CodeNotObject, 0},
		{"not JSON", plan.FormatProperties, secret, CodeNotObject, 0},
		{"broken JSON", plan.FormatProperties, `{"KEY_NAME":"` + secret + `",}`, CodeNotObject, 0},
		{"two objects", plan.FormatProperties, `{"KEY_NAME":"` + secret + `"} {}`, CodeNotObject, 0},
		{"not UTF-8", plan.FormatJSON, "{\"KEY_NAME\":\"" + secret + "\xff\"}", CodeNotObject, 0},
		{"unknown format", plan.Format("toml"), `{"KEY_NAME":"` + secret + `"}`, CodeUnknownFormat, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := Render(tt.f, []byte(tt.doc), nil)
			var re *Error
			if !errors.As(err, &re) {
				t.Fatalf("Render = %d bytes, %v; want a *render.Error", len(out), err)
			}
			if re.Code != tt.code || re.Index != tt.pos {
				t.Errorf("code %s, key #%d; want %s, #%d", re.Code, re.Index, tt.code, tt.pos)
			}
			msg := err.Error()
			for _, hidden := range []string{secret, "KEY_", "key.name", "LD_PRELOAD"} {
				if strings.Contains(msg, hidden) {
					t.Errorf("the error holds a key or the value (%s): %s", hidden, strings.ReplaceAll(msg, hidden, "<hidden>"))
				}
			}
			if !strings.Contains(msg, tt.code) {
				t.Errorf("the error lacks the code %s", tt.code)
			}
			if tt.pos > 0 && !strings.Contains(msg, fmt.Sprintf("key #%d:", tt.pos)) {
				t.Errorf("the error does not name key #%d", tt.pos)
			}
		})
	}
}

func TestKeyOrderKept(t *testing.T) {
	out := render(t, plan.FormatDotenv, []byte(`{"Z":"1","A":"2","M":"3"}`))
	if string(out) != "Z='1'\nA='2'\nM='3'\n" {
		t.Errorf("Render = %q, want the keys in the object's order", out)
	}
}

// TestErrorCode: the code of FileData's errors, wrapped as it returns them,
// and CodeNotObject for an error that is not a rendering failure.
func TestErrorCode(t *testing.T) {
	_, _, binary := FileData(plan.Secret{File: "f", Format: plan.FormatJSON}, []byte(`{}`), true)
	_, _, quote := FileData(plan.Secret{File: "f", Format: plan.FormatDotenv}, []byte(`{"A":"it's"}`), false)
	_, _, notObject := FileData(plan.Secret{File: "f", Format: plan.FormatYAML}, []byte(`[1]`), false)
	for _, tt := range []struct {
		err  error
		want string
	}{
		{binary, CodeBinary},
		{quote, CodeUnsupportedValue},
		{notObject, CodeNotObject},
		{fmt.Errorf("writing: %w", quote), CodeUnsupportedValue},
		{errors.New("something else"), CodeNotObject},
	} {
		if got := ErrorCode(tt.err); got != tt.want {
			t.Errorf("ErrorCode(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

// recordBuffers wraps outBuffer for the test, and returns the buffers that
// Render made, in order.
func recordBuffers(t *testing.T) *[][]byte {
	t.Helper()
	var made [][]byte
	orig := outBuffer
	outBuffer = func(size int) []byte {
		b := orig(size)
		made = append(made, b)
		return b
	}
	t.Cleanup(func() { outBuffer = orig })
	return &made
}

// TestRenderNeverGrowsItsBuffer: a rendering is written into one buffer that
// is the result. One that grew would have left a copy of the values written
// so far in an array that nothing zeroes. The values are the widest to
// escape: control characters, characters beyond U+FFFF, long keys (YAML's
// explicit form).
func TestRenderNeverGrowsItsBuffer(t *testing.T) {
	wide := []string{"\x01\x02\x03\x1b\x7f", strings.Repeat("🔑", 300), strings.Repeat("\x01", 2000), "\u2028\u2029é", "x"}
	keys := []string{"A", strings.Repeat("\x01", 400), strings.Repeat("🔑", 400), "B_1", "c"}
	for _, f := range []plan.Format{plan.FormatDotenv, plan.FormatJSON, plan.FormatProperties, plan.FormatYAML} {
		t.Run(string(f), func(t *testing.T) {
			ks, vs := keys, wide
			if f == plan.FormatDotenv {
				ks, vs = shellKeys, append(slices.Clone(shellValues), wide...)
			}
			doc, _ := object(t, ks, vs)
			made := recordBuffers(t)
			got := render(t, f, doc)
			if len(*made) != 1 {
				t.Fatalf("Render made %d buffers, want 1", len(*made))
			}
			buf := (*made)[0]
			if len(got) == 0 || cap(got) != cap(buf) || &got[:1][0] != &buf[:1][0] {
				t.Errorf("the %d-byte rendering is not in the buffer of %d bytes made for it: it grew", len(got), cap(buf))
			}
		})
	}
}

// TestFailedRenderIsCleared: a rendering that fails on a later key has
// written the earlier values; its buffer is zeroed before it is dropped.
func TestFailedRenderIsCleared(t *testing.T) {
	made := recordBuffers(t)
	_, err := Render(plan.FormatDotenv, []byte(`{"A":"first-value","B":"it's"}`), nil)
	if ErrorCode(err) != CodeUnsupportedValue {
		t.Fatalf("Render = %v, want %s", err, CodeUnsupportedValue)
	}
	if len(*made) != 1 {
		t.Fatalf("Render made %d buffers, want 1", len(*made))
	}
	buf := (*made)[0]
	if i := slices.IndexFunc(buf[:cap(buf)], func(b byte) bool { return b != 0 }); i >= 0 {
		t.Errorf("the failed rendering's buffer is not zeroed (a non-zero byte at %d of %d)", i, cap(buf))
	}
}
