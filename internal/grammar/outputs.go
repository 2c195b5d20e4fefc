package grammar

import (
	"fmt"
	"slices"
	"strings"

	"github.com/secretfetch/secretfetch/internal/plan"
	"github.com/secretfetch/secretfetch/internal/render"
)

// parseOutputs reads env-<name>, file-<name>, format-<name> and
// allow-keys-<name> into the plan's secrets: what each secret is delivered
// as (a file, a rendered file, an environment variable) is decided here and
// nowhere else.
func (p *parser) parseOutputs() {
	var envOwner map[string]string // variable -> the name whose env- key sets it; made on first use
	// Checked first: PodChecks.EnvVar looks through every reader per
	// variable.
	vars := 0
	for _, s := range p.keys.secrets {
		if _, ok := s.other[EnvPrefix]; ok {
			vars++
		}
	}
	tooMany := vars*len(p.readers) > MaxEnvEntries
	if tooMany {
		p.add(invalid(AnnotationsField, Omit, fmt.Sprintf(
			"%d variables (%s<name>) in %d containers would add %d env entries; a pod may get at most %d: list the containers that need them in %s, or use fewer variables",
			vars, EnvPrefix, len(p.readers), vars*len(p.readers), MaxEnvEntries, AnnotationContainers)))
	}
	for i := range p.plan.Secrets {
		sec := &p.plan.Secrets[i]
		other := p.keys.secrets[sec.File].other
		p.parseFile(sec, other)
		p.parseFormat(sec, other)
		if _, ok := other[ModePrefix]; ok && sec.NoFile {
			p.add(forbidden(annotation(ModePrefix+sec.File),
				fmt.Sprintf("%s%s is \"false\", so there is no file to give a mode; remove one of the two", FilePrefix, sec.File)))
		}
		v, ok := other[EnvPrefix]
		if !ok {
			if sec.NoFile {
				p.add(invalid(annotation(FilePrefix+sec.File), "false",
					fmt.Sprintf("with no file, the secret goes nowhere: add %s%s to deliver it as an environment variable, or remove this key", EnvPrefix, sec.File)))
			}
			continue
		}
		if p.parseEnv(sec, v, envOwner, tooMany) {
			if envOwner == nil {
				envOwner = map[string]string{}
			}
			envOwner[v] = sec.File
		}
	}
	if len(envOwner) > 0 {
		p.plan.EnvDir = EnvMountPath
		if Within(p.plan.Dir, EnvMountPath) || Within(EnvMountPath, p.plan.Dir) {
			p.add(invalid(annotation(AnnotationMountPath), p.plan.Dir,
				fmt.Sprintf("overlaps %s, where the init container writes the env file; choose another directory", EnvMountPath)))
		}
	}
	p.add(p.pod.EnvRefs(p.readers, envOwner)...)
}

// parseFile reads file-<name>: "false" writes no file.
func (p *parser) parseFile(sec *plan.Secret, other map[string]string) {
	v, ok := other[FilePrefix]
	if !ok {
		return
	}
	switch v {
	case "true":
	case "false":
		sec.NoFile = true
	default:
		p.add(notSupported(annotation(FilePrefix+sec.File), v, []string{"true", "false"}))
	}
}

// parseFormat reads format-<name> and allow-keys-<name>.
func (p *parser) parseFormat(sec *plan.Secret, other map[string]string) {
	if v, ok := other[FormatPrefix]; ok {
		fp := annotation(FormatPrefix + sec.File)
		if f, err := plan.ParseFormat(v); err != nil {
			p.add(notSupported(fp, v, []string{"dotenv", "json", "properties", "yaml"}))
		} else {
			sec.Format = f
		}
		if sec.NoFile {
			p.add(forbidden(fp, fmt.Sprintf("%s%s is \"false\", so there is no file to render; remove one of the two", FilePrefix, sec.File)))
		}
	}
	if v, ok := other[AllowKeysPrefix]; ok {
		keys, errs := parseAllowKeys(sec, v, other)
		sec.AllowKeys = keys
		p.add(errs...)
	}
}

// parseEnv reads env-<name>, v, and reports whether the variable is the
// secret's (a valid name that no other secret takes). envOwner maps the
// variables taken so far to their <name>.
func (p *parser) parseEnv(sec *plan.Secret, v string, envOwner map[string]string, tooMany bool) bool {
	key := EnvPrefix + sec.File
	ep := annotation(key)
	if p.s.NoEnvFiles {
		why := p.s.NoEnvFilesWhy
		if why == "" {
			why = "EnvFiles needs Kubernetes 1.35 or later, and this webhook runs with --env-files=false"
		}
		p.add(forbidden(ep, why+"; deliver the secret as a file instead"))
		return false
	}
	if msgs := envVarNameErrors(v); len(msgs) > 0 {
		p.add(invalid(ep, v, strings.Join(msgs, "; ")))
		return false
	}
	if other, dup := envOwner[v]; dup {
		p.add(invalid(ep, v, fmt.Sprintf("%s%s already sets this variable; variable names must be unique in the pod", EnvPrefix, other)))
		return false
	}
	if sec.Format != "" {
		p.add(forbidden(ep, fmt.Sprintf("%s%s renders a file of many keys, and a variable takes one value; use %s%s to pick one field",
			FormatPrefix, sec.File, KeyPrefix, sec.File)))
	}
	if !tooMany {
		p.add(p.pod.EnvVar(p.readers, key, v)...)
	}
	sec.Env = v
	return true
}

// envVarNameErrors is the Kubernetes API's check of an environment variable
// name (k8s.io/apimachinery's validation.IsEnvVarName), with its messages,
// so that a name the API server would refuse is refused here first, in the
// same words. A test holds the two to one answer.
func envVarNameErrors(v string) []string {
	var msgs []string
	if !envNameChars(v) {
		msgs = append(msgs, "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit "+
			"(e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')")
	}
	switch {
	case v == ".":
		msgs = append(msgs, `must not be '.'`)
	case v == "..":
		msgs = append(msgs, `must not be '..'`)
	case strings.HasPrefix(v, ".."):
		msgs = append(msgs, `must not start with '..'`)
	}
	return msgs
}

// envNameChars: ^[-._a-zA-Z][-._a-zA-Z0-9]*$.
func envNameChars(v string) bool {
	for i := 0; i < len(v); i++ {
		b := v[i]
		letter := 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || b == '-' || b == '.' || b == '_'
		if !letter && (i == 0 || b < '0' || b > '9') {
			return false
		}
	}
	return v != ""
}

// parseAllowKeys reads allow-keys-<name>, v, for sec, whose Format is
// already parsed (other holds the secret's other annotations). It returns
// the keys, or the problems: the file must be a dotenv rendering, and each
// entry one of the keys that dotenv refuses (render.ProcessKey), listed
// once. Each problem quotes its own entry, never the whole list; the number
// of entries is checked before they are split, so the work is bounded by
// plan.MaxAllowKeys whatever the value.
func parseAllowKeys(sec *plan.Secret, v string, other map[string]string) ([]string, ErrorList) {
	ap := annotation(AllowKeysPrefix + sec.File)
	if sec.Format != plan.FormatDotenv {
		if f, ok := other[FormatPrefix]; !ok {
			return nil, ErrorList{forbidden(ap, fmt.Sprintf(
				"only a dotenv rendering refuses keys, and there is no %s%s; set it to dotenv, or remove this annotation", FormatPrefix, sec.File))}
		} else if _, err := plan.ParseFormat(f); err == nil {
			return nil, ErrorList{forbidden(ap, fmt.Sprintf(
				"only a dotenv rendering refuses keys, and %s%s is %q; remove this annotation", FormatPrefix, sec.File, f))}
		}
		return nil, nil // the bad format- value is denied already
	}
	if n := strings.Count(v, ",") + 1; n > plan.MaxAllowKeys {
		return nil, ErrorList{invalid(ap, fmt.Sprintf("<%d entries>", n),
			fmt.Sprintf("at most %d keys may be listed", plan.MaxAllowKeys))}
	}
	var errs ErrorList
	var keys []string
	emptyReported := false
	for _, raw := range strings.Split(v, ",") {
		k := strings.TrimSpace(raw)
		switch {
		case k == "":
			if !emptyReported {
				errs = append(errs, invalid(ap, Truncate(v, MaxQuoted), "an entry is empty; list key names separated by commas"))
				emptyReported = true
			}
		case plan.ValidateAllowKey(k) != nil:
			errs = append(errs, invalid(ap, Truncate(k, MaxQuoted),
				"not a shell variable name: use letters, digits and '_', not starting with a digit"))
		case !render.ProcessKey(k):
			errs = append(errs, invalid(ap, Truncate(k, MaxQuoted),
				"a dotenv rendering writes this key anyway; list only keys that change how a process runs (the README lists them), such as PATH or NODE_OPTIONS"))
		case slices.Contains(keys, k):
			errs = append(errs, duplicate(ap, k))
		default:
			keys = append(keys, k)
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return keys, nil
}
