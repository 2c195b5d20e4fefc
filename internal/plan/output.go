package plan

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// EnvFileName is the name of the env file in Plan.EnvDir. init-fetch writes
// it; the webhook's fileKeyRef entries name it.
const EnvFileName = "secretfetch.env"

// Format is how a JSON-object secret is rendered into its file.
type Format string

// The formats a secret can be rendered in. Their quoting rules are in
// package render and in the README.
const (
	FormatDotenv     Format = "dotenv"
	FormatJSON       Format = "json"
	FormatProperties Format = "properties"
	FormatYAML       Format = "yaml"
)

// Formats lists every Format, in the order denials list them.
var Formats = []Format{FormatDotenv, FormatJSON, FormatProperties, FormatYAML}

// ParseFormat checks a format name.
func ParseFormat(s string) (Format, error) {
	if !slices.Contains(Formats, Format(s)) {
		return "", fmt.Errorf("%q is not a format; use one of %s", s, formatList())
	}
	return Format(s), nil
}

func formatList() string {
	s := make([]string, len(Formats))
	for i, f := range Formats {
		s[i] = string(f)
	}
	return strings.Join(s, ", ")
}

// ValidateEnvName checks an environment variable name with the rule of the
// Kubernetes API's IsEnvVarName: letters, digits, '_', '-' and '.', not
// starting with a digit, and not ".", ".." or starting with "..". The
// webhook checks the same name with apimachinery too; this copy keeps the
// plan free of Kubernetes packages.
func ValidateEnvName(name string) error {
	if !isEnvName(name) {
		return fmt.Errorf("%q is not an environment variable name: use letters, digits, '_', '-' and '.', not starting with a digit", name)
	}
	if strings.HasPrefix(name, "..") || name == "." {
		return fmt.Errorf("%q is not an environment variable name: it must not be '.' or start with '..'", name)
	}
	return nil
}

// validateOutputs checks what each secret is delivered as: a file (raw or
// rendered), an environment variable, or both.
func (p *Plan) validateOutputs(add func(field, format string, args ...any)) {
	var envs map[string]int // made on first use: most plans have no env
	for i, s := range p.Secrets {
		f := "secrets[" + strconv.Itoa(i) + "]"
		if s.Env != "" {
			if err := ValidateEnvName(s.Env); err != nil {
				add(f+".env", "%v", err)
			} else if j, dup := envs[s.Env]; dup {
				add(f+".env", "%q is already used by secrets[%d]; variable names must be unique", s.Env, j)
			} else {
				if envs == nil {
					envs = map[string]int{}
				}
				envs[s.Env] = i
			}
		}
		if s.NoFile && s.Env == "" {
			add(f+".noFile", "a secret without a file needs env; set env, or write the file")
		}
		if s.Format != "" {
			if _, err := ParseFormat(string(s.Format)); err != nil {
				add(f+".format", "%v", err)
			}
			if s.Env != "" {
				add(f+".format", "a rendered file holds many keys, and env takes one value; use key to give env one field")
			}
		}
		if s.AllowKeys != nil {
			validateAllowKeys(f+".allowKeys", s, add)
		}
	}
	hasEnv := slices.ContainsFunc(p.Secrets, func(s Secret) bool { return s.Env != "" })
	switch {
	case !hasEnv && p.EnvDir != "":
		add("envDir", "no secret has env, so there is no env file; remove envDir")
	case hasEnv && p.EnvDir == "":
		add("envDir", "a secret has env, so the directory of the env file is required")
	case p.EnvDir != "":
		if err := ValidateDir(p.EnvDir); err != nil {
			add("envDir", "%v", err)
		} else if p.Dir != "" && (within(p.EnvDir, p.Dir) || within(p.Dir, p.EnvDir)) {
			add("envDir", "%q overlaps dir %q; the env file must not be visible in the app's mount", p.EnvDir, p.Dir)
		}
	}
}

// within reports whether the clean absolute path a is b or below it.
func within(a, b string) bool { return a == b || strings.HasPrefix(a, strings.TrimSuffix(b, "/")+"/") }

// MaxAllowKeys caps the keys that one secret's AllowKeys lists.
const MaxAllowKeys = 64

// ValidateAllowKey checks one key of AllowKeys: a shell variable name,
// [A-Za-z_][A-Za-z0-9_]*, as every key of a dotenv file is. Whether the key
// is one that dotenv refuses is for the webhook to say (package render
// holds that list); init-fetch needs only the names.
func ValidateAllowKey(key string) error {
	if !isShellName(key) {
		return fmt.Errorf("%q is not a shell variable name: use letters, digits and '_', not starting with a digit", key)
	}
	return nil
}

// validateAllowKeys checks AllowKeys: only for a dotenv rendering (no other
// format refuses keys), at most MaxAllowKeys names, each valid and listed
// once.
func validateAllowKeys(field string, s Secret, add func(field, format string, args ...any)) {
	if s.Format != FormatDotenv {
		add(field, "only a dotenv rendering refuses keys, so allowKeys needs format dotenv; remove it")
		return
	}
	switch n := len(s.AllowKeys); {
	case n == 0:
		add(field, "the list is empty; name at least one key, or remove it")
		return
	case n > MaxAllowKeys:
		add(field, "%d keys; at most %d may be listed", n, MaxAllowKeys)
		return
	}
	for i, k := range s.AllowKeys {
		if err := ValidateAllowKey(k); err != nil {
			add(field+"["+strconv.Itoa(i)+"]", "%v", err)
		} else if slices.Contains(s.AllowKeys[:i], k) {
			add(field+"["+strconv.Itoa(i)+"]", "%q is listed twice", k)
		}
	}
}
