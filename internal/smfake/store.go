package smfake

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"time"
)

// The staging labels that Secrets Manager itself moves.
const (
	StageCurrent  = "AWSCURRENT"
	StagePrevious = "AWSPREVIOUS"
)

// Value is a secret value. Exactly one of the two is meaningful: Binary !=
// nil means a binary secret (SecretBinary), otherwise String is the
// SecretString, possibly empty.
type Value struct {
	String string
	Binary []byte
}

func (v Value) isBinary() bool { return v.Binary != nil }

func (v Value) equal(o Value) bool {
	if v.isBinary() != o.isBinary() {
		return false
	}
	if v.isBinary() {
		return bytes.Equal(v.Binary, o.Binary)
	}
	return v.String == o.String
}

// clone copies Binary so that the store never aliases a caller's buffer.
func (v Value) clone() Value {
	if v.Binary != nil {
		v.Binary = bytes.Clone(v.Binary)
		if v.Binary == nil { // bytes.Clone of an empty slice may be nil
			v.Binary = []byte{}
		}
	}
	return v
}

// Tag is a secret's tag.
type Tag struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

type version struct {
	id      string
	value   Value
	stages  []string
	created time.Time
}

func (v *version) hasStage(stage string) bool { return slices.Contains(v.stages, stage) }

func (v *version) removeStage(stage string) {
	v.stages = slices.DeleteFunc(v.stages, func(s string) bool { return s == stage })
}

type secret struct {
	name        string
	arn         string
	description string
	kmsKeyID    string
	tags        []Tag
	created     time.Time
	changed     time.Time
	accessed    time.Time // zero until the first read
	versions    []*version
}

func (sec *secret) version(id string) *version {
	for _, v := range sec.versions {
		if v.id == id {
			return v
		}
	}
	return nil
}

func (sec *secret) withStage(stage string) *version {
	for _, v := range sec.versions {
		if v.hasStage(stage) {
			return v
		}
	}
	return nil
}

// attachStages gives v the stages, moving each from whichever version held
// it, as AWS does: a label is on at most one version of a secret. Moving
// AWSCURRENT away from a version leaves AWSPREVIOUS on it, taking
// AWSPREVIOUS from whoever had it.
func (sec *secret) attachStages(v *version, stages []string) {
	for _, stage := range stages {
		if v.hasStage(stage) {
			continue
		}
		holder := sec.withStage(stage)
		if holder != nil {
			holder.removeStage(stage)
		}
		if stage == StageCurrent && holder != nil {
			if prev := sec.withStage(StagePrevious); prev != nil {
				prev.removeStage(StagePrevious)
			}
			holder.stages = append(holder.stages, StagePrevious)
		}
		v.stages = append(v.stages, stage)
	}
}

// stagesByVersion maps each version that has a label to its labels. AWS
// leaves versions without labels out: they are deprecated.
func (sec *secret) stagesByVersion() map[string][]string {
	m := map[string][]string{}
	for _, v := range sec.versions {
		if len(v.stages) > 0 {
			m[v.id] = slices.Clone(v.stages)
		}
	}
	return m
}

// store holds the secrets. The Server's mutex guards it.
type store struct {
	arnPrefix string // "arn:aws:secretsmanager:<region>:<account>:secret:"
	secrets   []*secret
	// replicaSuffixes derives a secret's ARN suffix from its account and
	// name instead of drawing it (see WithReplicaSuffixes).
	replicaSuffixes bool
	account         string
}

func newStore(region, account string) store {
	return store{arnPrefix: "arn:aws:secretsmanager:" + region + ":" + account + ":secret:", account: account}
}

// resolve finds a secret by name, full ARN, or partial ARN (the ARN without
// the "-XXXXXX" suffix AWS appends to the name). A full ARN wins over a
// partial one when both could match, as in AWS.
func (st *store) resolve(id string) *secret {
	if rest, ok := strings.CutPrefix(id, st.arnPrefix); ok {
		for _, sec := range st.secrets {
			if sec.arn == id {
				return sec
			}
		}
		id = rest
	} else if strings.HasPrefix(id, "arn:") {
		// Another partition, region or account: not this fake's secret.
		return nil
	}
	for _, sec := range st.secrets {
		if sec.name == id {
			return sec
		}
	}
	return nil
}

// createSecretInput is what CreateSecret needs, from HTTP or from Go.
type createSecretInput struct {
	name        string
	token       string // version ID of the first version; generated if empty
	description string
	kmsKeyID    string
	tags        []Tag
	value       *Value // nil creates a secret with no version
}

func (st *store) create(in createSecretInput, now time.Time) (*secret, *version, error) {
	if err := validateSecretName(in.name); err != nil {
		return nil, nil, err
	}
	if st.resolveName(in.name) != nil {
		return nil, nil, apiErrorf(codeResourceExists, "The operation failed because the secret %s already exists.", in.name)
	}
	suffix, err := randomSuffix()
	if st.replicaSuffixes {
		suffix = replicaSuffix(st.account, in.name)
	}
	if err != nil {
		return nil, nil, apiErrorf(codeInternalServiceError, "generating the ARN suffix: %v", err)
	}
	sec := &secret{
		name:        in.name,
		arn:         st.arnPrefix + in.name + "-" + suffix,
		description: in.description,
		kmsKeyID:    in.kmsKeyID,
		tags:        slices.Clone(in.tags),
		created:     now,
		changed:     now,
	}
	var v *version
	if in.value != nil {
		if v, err = st.putValue(sec, in.token, *in.value, nil, now); err != nil {
			return nil, nil, err
		}
	}
	st.secrets = append(st.secrets, sec)
	return sec, v, nil
}

func (st *store) resolveName(name string) *secret {
	for _, sec := range st.secrets {
		if sec.name == name {
			return sec
		}
	}
	return nil
}

// putValue adds a version with the given ID (a new UUID if token is empty)
// and stages (AWSCURRENT if none). Repeating a token with the same value
// changes nothing and returns the existing version, which is what makes
// ClientRequestToken an idempotency token; repeating it with another value
// fails, because AWS never changes a version's value.
func (st *store) putValue(sec *secret, token string, val Value, stages []string, now time.Time) (*version, error) {
	for _, stage := range stages {
		if stage == "" || len(stage) > 256 {
			return nil, apiErrorf(codeInvalidParameter, "A staging label must be 1 to 256 characters long.")
		}
	}
	if token == "" {
		var err error
		if token, err = newUUID(); err != nil {
			return nil, apiErrorf(codeInternalServiceError, "generating a version ID: %v", err)
		}
	}
	if existing := sec.version(token); existing != nil {
		if existing.value.equal(val) {
			return existing, nil
		}
		return nil, apiErrorf(codeResourceExists, "You can't modify an existing version, you can only create a new version.")
	}
	if len(stages) == 0 {
		stages = []string{StageCurrent}
	}
	v := &version{id: token, value: val.clone(), created: now}
	sec.versions = append(sec.versions, v)
	sec.attachStages(v, stages)
	sec.changed = now
	return v, nil
}

// pick selects the version GetSecretValue returns: by ID, by stage, or by
// both when they agree. Neither means AWSCURRENT.
func (sec *secret) pick(versionID, stage string) (*version, error) {
	switch {
	case versionID != "":
		v := sec.version(versionID)
		if v == nil {
			return nil, apiErrorf(codeResourceNotFound, "Secrets Manager can't find the specified secret value for VersionId: %s", versionID)
		}
		if stage != "" && !v.hasStage(stage) {
			return nil, apiErrorf(codeResourceNotFound, "Secrets Manager can't find the specified secret value for VersionId: %s and staging label: %s", versionID, stage)
		}
		return v, nil
	default:
		if stage == "" {
			stage = StageCurrent
		}
		v := sec.withStage(stage)
		if v == nil {
			return nil, apiErrorf(codeResourceNotFound, "Secrets Manager can't find the specified secret value for staging label: %s", stage)
		}
		return v, nil
	}
}

// validateSecretName applies AWS's rule for secret names: 1 to 512 ASCII
// letters, digits and the characters /_+=.@-! .
func validateSecretName(name string) error {
	const msg = "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!"
	if name == "" || len(name) > 512 {
		return apiErrorf(codeInvalidParameter, msg)
	}
	for _, c := range name {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.ContainsRune("/_+=.@-!", c):
		default:
			return apiErrorf(codeInvalidParameter, msg)
		}
	}
	return nil
}

// randomSuffix is the 6-character suffix AWS appends to a secret's name in
// its ARN, so that a re-created secret of the same name gets a new ARN.
func randomSuffix() (string, error) {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b), nil
}

// replicaSuffix is the suffix of a secret in every fake with
// WithReplicaSuffixes: a replica in another region keeps its primary's ARN
// but for the region.
func replicaSuffix(account, name string) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	sum := sha256.Sum256([]byte(account + ":" + name))
	b := make([]byte, 6)
	for i := range b {
		b[i] = alphabet[int(sum[i])%len(alphabet)]
	}
	return string(b)
}

// newUUID returns a random (version 4) UUID, the form AWS uses for version
// IDs and request IDs.
func newUUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}

// CreateSecret creates a secret named name with v as its first version,
// labelled AWSCURRENT, and returns its ARN and version ID. It is the Go
// twin of the CreateSecret operation, for seeding.
func (s *Server) CreateSecret(name string, v Value) (arn, versionID string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, ver, err := s.store.create(createSecretInput{name: name, value: &v}, s.now())
	if err != nil {
		return "", "", fmt.Errorf("creating secret %q: %w", name, err)
	}
	return sec.arn, ver.id, nil
}

// PutSecretValue adds a version to the secret that id names (name, full or
// partial ARN), with the given stages or AWSCURRENT, moving stages the way
// AWS does. It returns the new version's ID.
func (s *Server) PutSecretValue(id string, v Value, stages ...string) (versionID string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := s.store.resolve(id)
	if sec == nil {
		return "", fmt.Errorf("putting a value into secret %q: %w", id, errSecretNotFound())
	}
	ver, err := s.store.putValue(sec, "", v, stages, s.now())
	if err != nil {
		return "", fmt.Errorf("putting a value into secret %q: %w", id, err)
	}
	return ver.id, nil
}

// SecretInfo describes a stored secret without its values.
type SecretInfo struct {
	Name string
	ARN  string
	// VersionStages maps each version ID to its labels, including versions
	// without labels (unlike DescribeSecret).
	VersionStages map[string][]string
}

// Secret describes the secret that id names, for assertions in tests.
func (s *Server) Secret(id string) (SecretInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := s.store.resolve(id)
	if sec == nil {
		return SecretInfo{}, false
	}
	info := SecretInfo{Name: sec.name, ARN: sec.arn, VersionStages: map[string][]string{}}
	for _, v := range sec.versions {
		info.VersionStages[v.id] = slices.Clone(v.stages)
	}
	return info, true
}
