package grammar

import (
	"errors"
	"fmt"
	"strings"

	"github.com/secretfetch/secretfetch/internal/plan"
)

// parseSecrets reads each <name>'s secret-, key-, version-stage-,
// version-id-, mode- and pattern- annotations into the plan's secrets, and
// checks that the pod names at least one secret, and a region for those
// given by name.
func (p *parser) parseSecrets() {
	p.modesOK = true
	// One allocation: a plan.Secret is a dozen fields, and growing the slice
	// by appends copied it several times per pod.
	p.plan.Secrets = make([]plan.Secret, 0, len(p.keys.names))
	var byName []string // non-ARN secret names, for the region check
	for _, name := range p.keys.names {
		s := p.keys.secrets[name]
		if !s.hasID {
			p.requireID(name, s)
			continue
		}
		sec, isName := p.parseSecret(name, s)
		if isName {
			byName = append(byName, name)
		}
		p.plan.Secrets = append(p.plan.Secrets, sec)
	}
	if len(p.keys.secrets) == 0 {
		p.add(required(annotation(SecretPrefix+"<name>"),
			"at least one secret is required, for example "+SecretPrefix+"db: prod/db"))
	}
	if p.plan.Region == "" && len(byName) > 0 {
		p.add(required(annotation(AnnotationRegion),
			fmt.Sprintf("%s %s given by name, not by ARN, so a region is needed: set %s, or start the webhook with --default-region",
				plural(len(byName), "secret", "secrets"), QuoteList(byName), AnnotationRegion)))
	}
}

// requireID reports each per-secret annotation of a <name> that has no
// secret-<name>.
func (p *parser) requireID(name string, s *secretKeys) {
	for _, pfx := range secretKeyPrefixes {
		if _, ok := s.other[pfx]; ok {
			p.add(required(annotation(SecretPrefix+name),
				fmt.Sprintf("%s%s is set, so this secret ID is required too; add it, or remove %s%s", pfx, name, pfx, name)))
		}
	}
}

// parseSecret reads one secret; isName is true for a valid ID that is a
// name, not an ARN. The outputs (env-, file-, format-, allow-keys-) are
// parseOutputs's.
func (p *parser) parseSecret(name string, s *secretKeys) (sec plan.Secret, isName bool) {
	sec = plan.Secret{File: name, ID: s.id}
	secretPath := annotation(SecretPrefix + name)
	if err := plan.ValidateName(name); err != nil {
		p.add(invalid(secretPath, Omit, "the part after secret- is the file name: "+err.Error()))
	}
	if err := plan.ValidateSecretID(s.id); err != nil {
		p.add(invalid(secretPath, Omit, err.Error()))
	} else {
		isName = !strings.HasPrefix(s.id, "arn:")
	}
	if v, ok := s.other[KeyPrefix]; ok {
		sec.Key = v
		if err := plan.ValidateKeyPath(v); err != nil {
			p.add(invalid(annotation(KeyPrefix+name), Omit, err.Error()))
		}
	}
	p.parseVersion(name, s, &sec)
	if v, ok := s.other[ModePrefix]; ok {
		m, err := plan.ParseMode(v)
		if err != nil {
			p.modesOK = false
			p.add(invalid(annotation(ModePrefix+name), Omit, err.Error()))
		}
		sec.Mode = m
	}
	// The pattern is checked by encode: compiling an RE2 pattern costs more
	// than the rest of a request, so it is done once.
	sec.Pattern = s.other[PatternPrefix]
	return sec, isName
}

// parseVersion reads version-stage- and version-id-, which exclude each
// other. Their formats are the plan's to check (see encode).
func (p *parser) parseVersion(name string, s *secretKeys, sec *plan.Secret) {
	stage, hasStage := s.other[VersionStagePrefix]
	id, hasVersionID := s.other[VersionIDPrefix]
	sec.VersionStage, sec.VersionID = stage, id
	if hasStage && hasVersionID {
		p.add(forbidden(annotation(VersionIDPrefix+name),
			fmt.Sprintf("cannot be combined with %s%s; set one or the other", VersionStagePrefix, name)))
	}
}

// ValidateRegion checks a region name with the plan package's own rule,
// which it exposes only through Plan.Validate.
func ValidateRegion(region string) error {
	p := plan.Plan{Version: plan.Version, Dir: plan.DefaultDir, Region: region,
		Secrets: []plan.Secret{{File: "x", ID: "x"}}}
	var ve *plan.ValidationError
	if err := p.Validate(); errors.As(err, &ve) {
		for _, fe := range ve.Errors {
			if fe.Field == "region" {
				return errors.New(fe.Detail)
			}
		}
	}
	return nil
}

// planErrors maps the plan package's validation errors back to
// annotations, and drops problems on an annotation that already has one.
func (p *parser) planErrors(err error) ErrorList {
	if err == nil {
		return nil
	}
	var ve *plan.ValidationError
	if !errors.As(err, &ve) {
		return ErrorList{internalError(AnnotationsField, fmt.Errorf("validating the plan: %w", err))}
	}
	reported := map[string]bool{}
	for _, e := range p.errs {
		reported[e.Field] = true
	}
	// p.plan.Secrets holds one entry per name that has a secret- key, in
	// order.
	var files []string
	for _, n := range p.keys.names {
		if p.keys.secrets[n].hasID {
			files = append(files, n)
		}
	}
	var out ErrorList
	for _, fe := range ve.Errors {
		key := annotationFor(fe.Field, files)
		if key == "" {
			// Version, or at least one secret: handled above.
			continue
		}
		fp := annotation(key)
		if reported[fp] {
			continue
		}
		reported[fp] = true
		var value any = Omit // the plan's details quote the value...
		if name, ok := strings.CutPrefix(key, PatternPrefix); ok {
			value = p.keys.secrets[name].other[PatternPrefix] // ...but not a pattern
		}
		out = append(out, invalid(fp, value, fe.Detail))
	}
	return out
}

// annotationFor returns the annotation key behind a plan field such as
// "secrets[2].versionStage", or "" when it has none.
func annotationFor(planField string, files []string) string {
	switch planField {
	case "region":
		return AnnotationRegion
	case "dir":
		return AnnotationMountPath
	}
	var i int
	var sub string
	if n, err := fmt.Sscanf(planField, "secrets[%d].%s", &i, &sub); err != nil || n != 2 || i < 0 || i >= len(files) {
		return ""
	}
	prefix := map[string]string{
		"file": SecretPrefix, "id": SecretPrefix, "key": KeyPrefix, "versionStage": VersionStagePrefix,
		"versionId": VersionIDPrefix, "mode": ModePrefix, "pattern": PatternPrefix,
		"env": EnvPrefix, "noFile": FilePrefix, "format": FormatPrefix,
	}[sub]
	if prefix == "" {
		return ""
	}
	return prefix + files[i]
}
