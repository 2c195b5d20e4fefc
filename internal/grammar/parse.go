package grammar

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/secretfetch/secretfetch/internal/plan"
)

// Parse reads every secretfetch.io annotation of an opted-in pod into a
// validated Result. It reports every problem it finds, not only the first,
// in a stable order: one Error per bad annotation, and those of pod (nil
// for none) where they belong.
//
// A pod beyond the limits (see CheckLimits) gets one problem, the limit, and
// no further parsing.
func Parse(in Input, s Settings, pod PodChecks) (*Result, ErrorList) {
	if err := CheckLimits(in); err != nil {
		return nil, ErrorList{err}
	}
	if pod == nil {
		pod = noPodChecks{}
	}
	p := &parser{in: in, s: s.withDefaults(), pod: pod}
	return p.parse()
}

// parser holds one pod's parse: what each step has read so far, and the
// problems found.
type parser struct {
	in   Input
	s    Settings
	pod  PodChecks
	errs ErrorList

	keys keys
	plan plan.Plan
	// readers are the containers that get the mount; readersOK is false
	// when the containers annotation has problems.
	readers   []string
	readersOK bool
	// modesOK is false when a mode- annotation has a problem.
	modesOK bool
}

// keys are the pod's secretfetch.io annotations, sorted out by kind.
type keys struct {
	region, mountPath, containers string
	hasRegion, hasContainers      bool
	// secrets maps each <name> to its annotations, and names lists them
	// sorted.
	secrets map[string]*secretKeys
	names   []string
}

// secretKeys collects the annotations of one <name>.
type secretKeys struct {
	id    string
	hasID bool
	// other maps a per-secret prefix (KeyPrefix, ...) to its value.
	other map[string]string
}

func (p *parser) add(errs ...*Error) { p.errs = append(p.errs, errs...) }

// parse runs the steps in the order their problems are listed.
func (p *parser) parse() (*Result, ErrorList) {
	p.collect()
	p.plan = plan.Plan{Version: plan.Version, Dir: p.keys.mountPath, Subdir: plan.FilesSubdir, Region: p.s.DefaultRegion}
	p.parseRegion()
	p.parseFailover()
	p.parseBatch()
	p.parseSecrets()
	mountPathOK := p.parseMountPath()
	p.readers, p.readersOK = p.selectReaders()
	p.add(p.pod.Mounts(p.readers, p.readersOK, p.plan.Dir, mountPathOK)...)
	p.parseOutputs()
	encoded := p.encode()
	refresh := p.parseRefresh()
	p.parseRestart(refresh)
	p.checkPolls(refresh)
	if p.readersOK && p.modesOK {
		p.add(p.pod.Owner(p.readers, p.plan.Secrets)...)
	}
	p.add(p.pod.Platform()...)
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	return &Result{Plan: p.plan, Encoded: encoded, Readers: p.readers, Refresh: refresh}, nil
}

// collect sorts the annotations under Prefix by kind, and refuses the keys
// that are not part of the grammar. They are read in sorted order, so that
// the problems come in a stable order.
func (p *parser) collect() {
	k := keys{mountPath: plan.DefaultDir, secrets: map[string]*secretKeys{}}
	names := make([]string, 0, len(p.in.Annotations))
	for name := range p.in.Annotations {
		if strings.HasPrefix(name, Prefix) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, key := range names {
		v := p.in.Annotations[key]
		// The API server only passes valid UTF-8, but the plan is JSON, and
		// JSON would silently replace a bad byte: refuse it here instead.
		if !utf8.ValidString(v) {
			p.add(invalid(annotation(key), Omit, "the value is not valid UTF-8"))
			continue
		}
		switch key {
		case AnnotationInject:
			// Requested has read it.
		case AnnotationStatus:
			if v != StatusInjected {
				p.add(invalid(annotation(key), v,
					fmt.Sprintf("only the webhook writes this key, and only the value %q; remove it", StatusInjected)))
			}
		case AnnotationRegion:
			k.region, k.hasRegion = v, true
		case AnnotationMountPath:
			k.mountPath = v
		case AnnotationContainers:
			k.containers, k.hasContainers = v, true
		case AnnotationRefreshInterval, AnnotationRefreshNotify, AnnotationRefreshRestart, AnnotationRefreshRestartWindow,
			AnnotationFailoverRegion, AnnotationBatch:
			// parseRefresh, parseRestart, parseFailover and parseBatch read them.
		default:
			if !k.addSecretKey(key, v) {
				p.add(invalid(annotation(key), Omit, "this is not a secretfetch.io annotation; the keys are "+AllowedKeys))
			}
		}
	}
	k.names = make([]string, 0, len(k.secrets))
	for name := range k.secrets {
		k.names = append(k.names, name)
	}
	sort.Strings(k.names)
	p.keys = k
}

// addSecretKey records a per-secret annotation, and reports whether key is
// one.
func (k *keys) addSecretKey(key, v string) bool {
	if name, ok := strings.CutPrefix(key, SecretPrefix); ok {
		s := k.secret(name)
		s.id, s.hasID = v, true
		return true
	}
	for _, pfx := range secretKeyPrefixes {
		if name, ok := strings.CutPrefix(key, pfx); ok {
			k.secret(name).other[pfx] = v
			return true
		}
	}
	return false
}

func (k *keys) secret(name string) *secretKeys {
	s, ok := k.secrets[name]
	if !ok {
		s = &secretKeys{other: map[string]string{}}
		k.secrets[name] = s
	}
	return s
}

// parseRegion reads secretfetch.io/region over the default region.
func (p *parser) parseRegion() {
	if !p.keys.hasRegion {
		return
	}
	region := p.keys.region
	p.plan.Region = region
	if region == "" {
		p.add(invalid(annotation(AnnotationRegion), region,
			"the region is empty; set an AWS region such as us-east-1, or remove the annotation to use the default"))
	} else if err := ValidateRegion(region); err != nil {
		p.add(invalid(annotation(AnnotationRegion), Omit, err.Error()))
	}
}

// parseMountPath checks secretfetch.io/mount-path (or its default), and
// reports whether it is valid.
func (p *parser) parseMountPath() bool {
	fp := annotation(AnnotationMountPath)
	if err := plan.ValidateDir(p.plan.Dir); err != nil {
		p.add(invalid(fp, Omit, err.Error()))
		return false
	}
	if err := CheckMountPath(p.plan.Dir); err != nil {
		p.add(invalid(fp, Omit, err.Error()))
		return false
	}
	return true
}

// encode runs the plan package's own checks, those that have no exported
// function (region, version stage and version ID formats, and the pattern),
// all at once by encoding the plan, and keeps only the problems on
// annotations not already reported. It also bounds the encoded plan.
func (p *parser) encode() string {
	encoded, err := plan.Encode(&p.plan)
	p.add(p.planErrors(err)...)
	if len(encoded) > MaxPlanBytes {
		p.add(invalid(AnnotationsField, Omit, fmt.Sprintf(
			"these annotations make a plan of %d bytes, and the init container can start with at most %d (one environment variable); use fewer or shorter secrets, keys and patterns",
			len(encoded), MaxPlanBytes)))
	}
	return encoded
}

// checkPolls refuses a refresh that would have nothing to poll.
func (p *parser) checkPolls(r *Refresh) {
	if r != nil && len(p.plan.Secrets) > 0 && !slices.ContainsFunc(p.plan.Secrets, r.Polls) {
		p.add(invalid(annotation(AnnotationRefreshInterval), Omit,
			fmt.Sprintf("every secret is pinned by %s<name> or delivered only as an environment variable, which never change in a running container, so the refresh sidecar would have nothing to do; remove %s",
				VersionIDPrefix, AnnotationRefreshInterval)))
	}
}

// Polls reports whether the refresh sidecar polls s: a secret whose version
// is not pinned, and that is a file, or an env var when the pod is restarted
// on a change (otherwise a variable is read once, when its container
// starts, and a new version could reach nobody).
func (r *Refresh) Polls(s plan.Secret) bool {
	return s.VersionID == "" && (!s.NoFile || r.Restart != nil)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
