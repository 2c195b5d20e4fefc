package render

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	magiconair "github.com/magiconair/properties"

	"github.com/secretfetch/secretfetch/internal/plan"
)

// TestDotenvRefusesProcessKeys: a dotenv rendering refuses the keys that
// change how a process runs, whoever wrote the secret, with one message
// whatever the key (so it cannot quote it); the other formats write them,
// as nothing sources a json, properties or yaml file into a process's
// environment.
func TestDotenvRefusesProcessKeys(t *testing.T) {
	refused := []string{"PATH", "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "LD_ANYTHING_ELSE", "BASH_ENV",
		"BASH_FUNC_x", "ENV", "IFS", "PS4", "SHELLOPTS", "BASHOPTS", "NODE_OPTIONS", "JAVA_TOOL_OPTIONS",
		"_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "PYTHONPATH", "PYTHONSTARTUP", "PERL5OPT", "PERL5LIB", "RUBYOPT",
		"RUBYLIB", "GCONV_PATH", "HOSTALIASES", "GLIBC_TUNABLES", "SSL_CERT_FILE", "https_proxy", "HTTPS_PROXY",
		"GIT_SSH_COMMAND", "GIT_CONFIG_COUNT", "npm_config_script_shell", "DOTNET_STARTUP_HOOKS", "CORECLR_PROFILER_PATH",
		"path", "HOME", "GODEBUG"}
	kept := []string{"DB_PASSWORD", "PATHX", "MY_PATH", "LDAP_URL", "BASHFUL", "env", "home", "Path", "JAVA_VERSION",
		"NODE_ENV", "PYTHON_VERSION", "GIT_TOKEN", "AWS_SECRET_ACCESS_KEY", "_"}
	var msg string
	for _, k := range refused {
		doc := []byte(`{"OK":"1","` + k + `":"v"}`)
		_, err := Render(plan.FormatDotenv, doc, nil)
		var re *Error
		if !errors.As(err, &re) || re.Code != CodeProcessKey || re.Index != 2 {
			t.Errorf("dotenv with key %s: %v, want %s at key #2", k, err, CodeProcessKey)
			continue
		}
		if msg == "" {
			msg = err.Error()
		} else if err.Error() != msg {
			t.Errorf("the message for key %s differs from the one for %s: it depends on the key", k, refused[0])
		}
		if !ProcessKey(k) {
			t.Errorf("ProcessKey(%s) = false", k)
		}
		for _, f := range []plan.Format{plan.FormatJSON, plan.FormatProperties, plan.FormatYAML} {
			if _, err := Render(f, doc, nil); err != nil {
				t.Errorf("%s refused key %s: %v", f, k, err)
			}
		}
	}
	if strings.Contains(msg, "PATH") || !strings.Contains(msg, "allow-keys-") {
		t.Errorf("the message quotes a key, or does not say how to allow one: %s", msg)
	}
	for _, k := range kept {
		if out, err := Render(plan.FormatDotenv, []byte(`{"`+k+`":"v"}`), nil); err != nil || string(out) != k+"='v'\n" {
			t.Errorf("dotenv with key %s = %q, %v; want it written", k, out, err)
		}
	}
}

// TestDotenvAllowKeys: the plan's AllowKeys lets exactly the keys it names
// through, compared exactly, and no others.
func TestDotenvAllowKeys(t *testing.T) {
	doc := []byte(`{"PATH":"/opt/bin","NODE_OPTIONS":"--max-old-space-size=512","DB":"x"}`)
	out, err := Render(plan.FormatDotenv, doc, []string{"NODE_OPTIONS", "PATH"})
	if err != nil || string(out) != "PATH='/opt/bin'\nNODE_OPTIONS='--max-old-space-size=512'\nDB='x'\n" {
		t.Errorf("Render with both keys allowed = %q, %v", out, err)
	}
	for _, allow := range [][]string{{"PATH"}, {"path", "NODE_OPTIONS"}, {"LD_", "NODE_OPTIONS"}, nil} {
		if _, err := Render(plan.FormatDotenv, doc, allow); ErrorCode(err) != CodeProcessKey {
			t.Errorf("Render allowing %q = %v, want %s", allow, err, CodeProcessKey)
		}
	}
	// FileData passes the plan's list.
	s := plan.Secret{File: "app.env", Format: plan.FormatDotenv, AllowKeys: []string{"PATH", "NODE_OPTIONS"}}
	if _, _, err := FileData(s, doc, false); err != nil {
		t.Errorf("FileData with AllowKeys: %v", err)
	}
	s.AllowKeys = nil
	if _, _, err := FileData(s, doc, false); ErrorCode(err) != CodeProcessKey {
		t.Errorf("FileData without AllowKeys = %v, want %s", err, CodeProcessKey)
	}
}

// TestProcessKeysList: the names are sorted for the binary search, unique,
// and each is a shell name that a dotenv file could otherwise hold.
func TestProcessKeysList(t *testing.T) {
	names, prefixes := ProcessKeys()
	if !slices.IsSorted(names) {
		t.Error("processKeyNames is not sorted")
	}
	if len(slices.Compact(slices.Clone(names))) != len(names) {
		t.Error("processKeyNames lists a name twice")
	}
	for _, k := range append(names, prefixes...) {
		if !isShellName(k) {
			t.Errorf("%q is not a shell name", k)
		}
		for _, p := range prefixes {
			if k != p && strings.HasPrefix(k, p) {
				t.Errorf("%q is covered by the prefix %q", k, p)
			}
		}
	}
}

// TestPropertiesPlaceholders shows why a properties rendering refuses
// "${": magiconair/properties' default loader replaces ${NAME} with another
// property or an environment variable (Spring's placeholders do the same),
// while java.util.Properties reads it as text. Everything else with a '$'
// reads back unchanged through the default loader, expansion on.
func TestPropertiesPlaceholders(t *testing.T) {
	t.Setenv("SECRETFETCH_TEST_EXPANDED", "from-the-environment")
	hand := []byte("a=x\nb=${a}\nc=${SECRETFETCH_TEST_EXPANDED}\n")
	p, err := magiconair.Load(hand, magiconair.UTF8)
	if err != nil {
		t.Fatal(err)
	}
	if b, c := p.MustGet("b"), p.MustGet("c"); b != "x" || c != "from-the-environment" {
		t.Fatalf("magiconair's default loader read b=%q c=%q; the expansion this test shows did not happen", b, c)
	}

	if _, err := Render(plan.FormatProperties, []byte(`{"a":"x","b":"${a}"}`), nil); ErrorCode(err) != CodeUnsupportedValue {
		t.Errorf("Render(properties) of a value with ${ = %v, want %s", err, CodeUnsupportedValue)
	}
	values := []string{"$HOME", "$(id)", "`id`", "{x}", "$ {y}", "$", "a$", "$$", "\\$", "$\\{", "#{x}", "%{x}"}
	doc, want := object(t, []string{"k"}, values)
	out := render(t, plan.FormatProperties, doc)
	got, err := magiconair.Load(out, magiconair.ISO_8859_1)
	if err != nil {
		t.Fatalf("magiconair/properties, expansion on: %v", err)
	}
	compare(t, "magiconair/properties (default loader)", got.Map(), want)

	java, err := exec.LookPath("java")
	if err != nil {
		t.Skip("no java on this machine for java.util.Properties")
	}
	dir := t.TempDir()
	file, src := filepath.Join(dir, "app.properties"), filepath.Join(dir, "Load.java")
	if err := os.WriteFile(file, hand, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, []byte(javaReader), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := exec.Command(java, src, file).Output()
	if err != nil {
		t.Fatalf("java: %v", err)
	}
	if !strings.Contains(string(res), "62 247b617d") { // b = "${a}", in hex
		t.Errorf("java.util.Properties does not read ${a} as text:\n%s", res)
	}
}
