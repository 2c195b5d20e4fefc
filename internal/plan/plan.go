// Package plan is the contract between the secretfetch webhook and the
// init-fetch init container.
//
// The webhook builds a Plan from a pod's annotations and encodes it once with
// Encode; init-fetch decodes it with Decode. Both sides therefore agree on one
// wire format and one set of validation rules. A plan carries references to
// secrets (IDs, version labels, JSON keys), never secret values, because it is
// stored in the pod spec and so in etcd.
//
// This package depends on the standard library only: it is linked into the
// init container, which ships in every pod that uses secretfetch.
package plan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
)

const (
	// Version is the only plan format version this package reads and writes.
	Version = 1

	// DefaultDir is where the secrets are written when no mount path is given.
	DefaultDir = "/var/run/secrets/app"

	// FilesSubdir is the Subdir the webhook gives every plan.
	FilesSubdir = "files"

	// EnvVar is the environment variable from which init-fetch reads the plan
	// when no --plan flag is given.
	EnvVar = "SECRETFETCH_PLAN"

	// DefaultMode is the file mode of a secret file when none is given.
	DefaultMode Mode = 0o400
)

// Plan says which secrets init-fetch fetches and where it writes them.
type Plan struct {
	Version int `json:"version"`
	// Dir is the absolute directory that receives one file per secret: the
	// path at which the app containers open <Dir>/<file>.
	Dir string `json:"dir"`
	// Subdir, when set, is a directory inside Dir that init-fetch makes,
	// owns and lays the files out in; the app containers mount it (a
	// subPath) at Dir, while secretfetch's own containers mount the volume's
	// root there. The webhook always sets it to FilesSubdir: the root of a
	// memory emptyDir is sticky and world-writable, and with the nodes'
	// fs.protected_symlinks=1 the kernel lets nobody but a link's owner
	// follow a link that sits in such a directory, so the layout's links
	// must live one level down.
	Subdir string `json:"subdir,omitempty"`
	// Region is the AWS region for secrets whose ID is not an ARN. An ARN's
	// own region always wins, because Secrets Manager only serves a secret
	// from the region it lives in.
	Region string `json:"region,omitempty"`
	// FailoverRegion, when set, is the region of the secrets' replicas,
	// read when the primary region cannot answer (see FailoverFor).
	FailoverRegion string `json:"failoverRegion,omitempty"`
	// Batch asks for the secrets with BatchGetSecretValue, up to 20 a
	// call, where a request allows it (the current version only).
	Batch   bool     `json:"batch,omitempty"`
	Secrets []Secret `json:"secrets"`
	// EnvDir is the absolute directory of the env file (EnvFileName) that
	// the kubelet reads the secrets' environment variables from. It is set
	// exactly when a secret has Env (see output.go).
	EnvDir string `json:"envDir,omitempty"`
}

// Secret is one file to write from one Secrets Manager secret.
type Secret struct {
	// File is the file name inside Plan.Dir (see ValidateName).
	File string `json:"file"`
	// ID is a full ARN, a partial ARN or a secret name.
	ID string `json:"id"`
	// Key, when set, is a dotted path into a JSON SecretString; only that
	// field is written.
	Key string `json:"key,omitempty"`
	// VersionStage and VersionID select a version; at most one is set.
	VersionStage string `json:"versionStage,omitempty"`
	VersionID    string `json:"versionId,omitempty"`
	// Mode is the file mode; zero means DefaultMode.
	Mode Mode `json:"mode,omitempty"`
	// Pattern, when set, is an RE2 expression that the whole value must match.
	Pattern string `json:"pattern,omitempty"`
	// Env, when set, is the environment variable that also receives the
	// value, through the env file in Plan.EnvDir.
	Env string `json:"env,omitempty"`
	// NoFile delivers the value only as Env: no file is written into Dir.
	NoFile bool `json:"noFile,omitempty"`
	// Format, when set, renders a JSON object (the whole value, or the one
	// at Key) into the file instead of writing the value as it is.
	Format Format `json:"format,omitempty"`
	// AllowKeys lists the keys that Format refuses by default and that
	// this file may hold all the same, compared exactly: for dotenv, keys
	// that change how a process runs (see package render).
	AllowKeys []string `json:"allowKeys,omitempty"`
}

// FileMode returns the mode to write the file with, applying the default.
func (s Secret) FileMode() fs.FileMode {
	if s.Mode == 0 {
		return fs.FileMode(DefaultMode)
	}
	return fs.FileMode(s.Mode)
}

// RegionFor returns the region to fetch s from: the ARN's region when ID is an
// ARN, otherwise the plan's region.
func (p *Plan) RegionFor(s Secret) string {
	if a, err := ParseARN(s.ID); err == nil && a.Region != "" {
		return a.Region
	}
	return p.Region
}

// FailoverFor returns the replica region of s and the secret ID to ask it
// for: an ARN is rewritten to the replica's region, since a replica keeps
// its primary's ARN but for the region. It returns "" when the plan names no
// failover region or s already lives in it.
func (p *Plan) FailoverFor(s Secret) (region, id string) {
	if p.FailoverRegion == "" || p.FailoverRegion == p.RegionFor(s) {
		return "", ""
	}
	return p.FailoverRegion, ReplicaID(s.ID, p.FailoverRegion)
}

// ReplicaID is id for the replica in region: an ARN (full or partial) with
// its region replaced, a name as it is (the client's region decides).
func ReplicaID(id, region string) string {
	a, err := ParseARN(id)
	if err != nil {
		return id
	}
	return "arn:" + a.Partition + ":secretsmanager:" + region + ":" + a.AccountID + ":secret:" + a.Name
}

// Mode is a read-only file mode. It is written in JSON as an octal string
// ("0400") so that it reads the same in a pod spec as in an annotation.
type Mode fs.FileMode

// AllowedModes lists the only modes a secret file may have: every one is
// read-only, so a compromised app cannot rewrite what another container reads.
var AllowedModes = []Mode{0o400, 0o440, 0o444}

// ParseMode parses an octal mode such as "0400" and checks that it is allowed.
func ParseMode(s string) (Mode, error) {
	m, err := parseOctalMode(s)
	if err != nil {
		return 0, err
	}
	if !m.allowed() {
		return 0, fmt.Errorf("%q is not a read-only mode; use one of %s", s, allowedModeList())
	}
	return m, nil
}

// parseOctalMode checks only the syntax of a mode: four octal digits with a
// leading zero.
func parseOctalMode(s string) (Mode, error) {
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || !strings.HasPrefix(s, "0") || len(s) != 4 {
		return 0, fmt.Errorf("%q is not an octal file mode; use one of %s", s, allowedModeList())
	}
	return Mode(v), nil
}

func (m Mode) allowed() bool { return slices.Contains(AllowedModes, m) }

func (m Mode) String() string { return fmt.Sprintf("%04o", uint32(m)) }

// MarshalText writes the mode as a four-digit octal string.
func (m Mode) MarshalText() ([]byte, error) {
	if !m.allowed() {
		return nil, fmt.Errorf("mode %s is not allowed; use one of %s", m, allowedModeList())
	}
	return []byte(m.String()), nil
}

// UnmarshalText reads a four-digit octal string. Whether the mode is allowed
// is left to Validate: encoding/json drops the field name from errors that
// UnmarshalText returns, and Validate names it ("secrets[0].mode").
func (m *Mode) UnmarshalText(b []byte) error {
	v, err := parseOctalMode(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

func allowedModeList() string {
	s := make([]string, len(AllowedModes))
	for i, m := range AllowedModes {
		s[i] = m.String()
	}
	return strings.Join(s, ", ")
}

// Encode validates p and returns its compact JSON form.
func Encode(p *Plan) (string, error) {
	if err := p.Validate(); err != nil {
		return "", err
	}
	b, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("encoding plan: %w", err)
	}
	return string(b), nil
}

// Decode parses and validates a JSON plan. Unknown fields are rejected, so a
// plan written for a newer init-fetch fails loudly instead of half-working.
func Decode(data []byte) (*Plan, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var p Plan
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("decoding plan: %w", err)
	}
	// dec.More reports false for a stray ']' or '}', so ask for the next
	// token instead: only the end of the input is acceptable.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("decoding plan: unexpected data after the JSON object")
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// FieldError is one problem with one field of a plan.
type FieldError struct {
	Field  string // for example "secrets[2].mode"
	Detail string // what is wrong and what is allowed
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Detail }

// ValidationError holds every problem found in a plan, not only the first.
type ValidationError struct {
	Errors []*FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		parts[i] = fe.Error()
	}
	return "invalid plan: " + strings.Join(parts, "; ")
}

// Validate checks the whole plan and reports every problem at once.
func (p *Plan) Validate() error {
	var errs []*FieldError
	add := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Detail: fmt.Sprintf(format, args...)})
	}
	if p.Version != Version {
		add("version", "got %d; this init-fetch reads version %d", p.Version, Version)
	}
	if err := ValidateDir(p.Dir); err != nil {
		add("dir", "%v", err)
	}
	if p.Subdir != "" {
		if err := ValidateName(p.Subdir); err != nil {
			add("subdir", "%v", err)
		}
	}
	if p.Region != "" && !isRegion(p.Region) {
		add("region", "%q is not an AWS region name such as us-east-1", p.Region)
	}
	switch {
	case p.FailoverRegion == "":
	case !isRegion(p.FailoverRegion):
		add("failoverRegion", "%q is not an AWS region name such as us-west-2", p.FailoverRegion)
	case p.FailoverRegion == p.Region:
		add("failoverRegion", "%q is the region itself; name the region that holds the replicas", p.FailoverRegion)
	}
	if len(p.Secrets) == 0 {
		add("secrets", "at least one secret is required")
	}
	seen := make(map[string]int, len(p.Secrets))
	for i, s := range p.Secrets {
		f := "secrets[" + strconv.Itoa(i) + "]"
		if err := ValidateName(s.File); err != nil {
			add(f+".file", "%v", err)
		} else if j, dup := seen[s.File]; dup {
			add(f+".file", "%q is already used by secrets[%d]; file names must be unique", s.File, j)
		} else {
			seen[s.File] = i
		}
		if err := ValidateSecretID(s.ID); err != nil {
			add(f+".id", "%v", err)
		}
		if s.Key != "" {
			if err := ValidateKeyPath(s.Key); err != nil {
				add(f+".key", "%v", err)
			}
		}
		if s.VersionStage != "" && s.VersionID != "" {
			add(f+".versionId", "cannot be combined with versionStage; set one or the other")
		}
		if s.VersionStage != "" && !isStage(s.VersionStage) {
			add(f+".versionStage", "%q is not a staging label (1-256 characters, no spaces)", s.VersionStage)
		}
		if s.VersionID != "" && !isVersionID(s.VersionID) {
			add(f+".versionId", "%q is not a version ID (32-64 letters, digits and '-')", s.VersionID)
		}
		if s.Mode != 0 && !s.Mode.allowed() {
			add(f+".mode", "%s is not allowed; use one of %s", s.Mode, allowedModeList())
		}
		if s.Pattern != "" {
			if err := ValidatePattern(s.Pattern); err != nil {
				add(f+".pattern", "%v", err)
			}
		}
	}
	p.validateOutputs(add)
	if len(errs) > 0 {
		return &ValidationError{Errors: errs}
	}
	return nil
}

// MaxNameLength is the longest file name: Kubernetes allows 63 characters
// after an annotation prefix, and "secret-" takes 7 of them.
const MaxNameLength = 63 - len("secret-")

// ValidateName checks a secret file name: letters, digits, '-', '_' and '.',
// starting and ending with a letter or digit. That rules out "", ".", "..",
// hidden files and any path separator, so a name can never leave the
// directory.
func ValidateName(name string) error {
	if name == "" {
		return errors.New("the name is empty; use letters, digits, '-', '_' and '.'")
	}
	if len(name) > MaxNameLength {
		return fmt.Errorf("%q is longer than %d characters", name, MaxNameLength)
	}
	if !isName(name) {
		return fmt.Errorf("%q is not a valid file name; use letters, digits, '-', '_' and '.', starting and ending with a letter or digit", name)
	}
	return nil
}

// ValidateDir checks the directory secrets are written to: absolute, already
// clean, and not the root.
func ValidateDir(dir string) error {
	switch {
	case dir == "":
		return errors.New("the directory is empty; use an absolute path such as " + DefaultDir)
	case !path.IsAbs(dir):
		return fmt.Errorf("%q is not an absolute path", dir)
	case path.Clean(dir) != dir:
		return fmt.Errorf("%q is not a clean path (no '..', '.', '//' or trailing '/'); use %q", dir, path.Clean(dir))
	case dir == "/":
		return errors.New(`"/" cannot be used; choose a dedicated directory such as ` + DefaultDir)
	case strings.ContainsAny(dir, ":,\n\r\t\x00"):
		return fmt.Errorf("%q contains a character that is not allowed in a mount path (':', ',' or a control character)", dir)
	}
	return nil
}

// ValidateKeyPath checks a dotted JSON path such as "db.password": one or
// more non-empty segments without spaces.
func ValidateKeyPath(key string) error {
	for _, seg := range strings.Split(key, ".") {
		if !isKeySegment(seg) {
			return fmt.Errorf("%q is not a dotted JSON path such as db.password (segments must be non-empty, without spaces)", key)
		}
	}
	return nil
}

// KeyPath splits a dotted JSON path into its segments.
func KeyPath(key string) []string { return strings.Split(key, ".") }

// ValidatePattern checks that an RE2 pattern compiles, without compiling it.
// Parsing finds every error that compiling would (regexp/syntax's Compile
// cannot fail on a parsed expression), at a fraction of the cost: the webhook
// validates every plan it encodes, while only init-fetch needs the matcher.
func ValidatePattern(pattern string) error {
	if _, err := syntax.Parse(anchored(pattern), syntax.Perl); err != nil {
		return fmt.Errorf("not a valid RE2 pattern: %w", err)
	}
	return nil
}

// anchored makes a pattern match the whole value, not only a part of it.
func anchored(pattern string) string { return `^(?:` + pattern + `)$` }

// CompilePattern compiles an RE2 pattern anchored so that it must match the
// whole value, not only a part of it.
func CompilePattern(pattern string) (*regexp.Regexp, error) {
	re, err := regexp.Compile(anchored(pattern))
	if err != nil {
		return nil, fmt.Errorf("not a valid RE2 pattern: %w", err)
	}
	return re, nil
}

// ARN is a parsed Secrets Manager ARN:
// arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME.
type ARN struct {
	Partition string
	Region    string
	AccountID string
	// Name is the part after "secret:", which may or may not carry the
	// six-character random suffix that Secrets Manager appends.
	Name string
}

// Partitions lists the AWS partitions in which secretfetch accepts ARNs.
var Partitions = []string{"aws", "aws-cn", "aws-us-gov"}

// ParseARN parses s as a Secrets Manager secret ARN. It returns an error if s
// is an ARN of another service or partition, or not an ARN at all.
func ParseARN(s string) (ARN, error) {
	if !strings.HasPrefix(s, "arn:") {
		return ARN{}, fmt.Errorf("%q is not an ARN", s)
	}
	parts := strings.SplitN(s, ":", 7)
	if len(parts) != 7 {
		return ARN{}, fmt.Errorf("%q is not an ARN of the form arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME", s)
	}
	a := ARN{Partition: parts[1], Region: parts[3], AccountID: parts[4], Name: parts[6]}
	var problems []string
	if !slices.Contains(Partitions, a.Partition) {
		problems = append(problems, fmt.Sprintf("partition %q is not one of %s", a.Partition, strings.Join(Partitions, ", ")))
	}
	if parts[2] != "secretsmanager" {
		problems = append(problems, fmt.Sprintf("service %q is not secretsmanager", parts[2]))
	}
	if !isRegion(a.Region) {
		problems = append(problems, fmt.Sprintf("region %q is not an AWS region name", a.Region))
	}
	if !isAccountID(a.AccountID) {
		problems = append(problems, fmt.Sprintf("account %q is not a 12-digit account ID", a.AccountID))
	}
	if parts[5] != "secret" {
		problems = append(problems, fmt.Sprintf("resource type %q is not secret", parts[5]))
	}
	if !isSecretName(a.Name) {
		problems = append(problems, fmt.Sprintf("secret name %q is not valid (letters, digits and /_+=.@-)", a.Name))
	}
	if len(problems) > 0 {
		return ARN{}, fmt.Errorf("%q is not a Secrets Manager ARN: %s", s, strings.Join(problems, "; "))
	}
	return a, nil
}

// ValidateSecretID checks a secret ID: a Secrets Manager ARN (full or
// partial), or a secret name.
func ValidateSecretID(id string) error {
	if id == "" {
		return errors.New("the secret ID is empty; use a secret name or ARN")
	}
	if strings.HasPrefix(id, "arn:") {
		_, err := ParseARN(id)
		return err
	}
	if !isSecretName(id) {
		return fmt.Errorf("%q is not a secret name (1-512 letters, digits and /_+=.@-) or an ARN", id)
	}
	return nil
}
