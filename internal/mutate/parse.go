package mutate

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/secretfetch/secretfetch/internal/plan"
)

// Injection is a pod's validated request for secrets: the plan that
// init-fetch runs, and the pod-level settings the mutation needs. Only Parse
// makes one; Apply takes it as given.
type Injection struct {
	// Plan is what init-fetch fetches and where it writes it. Plan.Dir is
	// also the mount path in the readers.
	Plan plan.Plan
	// Readers are the names of the containers (init containers included)
	// that get the read-only mount. Kubernetes keeps container names unique
	// across a pod, so a name is enough.
	Readers []string
	// UID and GID are what the init container runs as, and so the owner of
	// the files (see the package comment).
	UID, GID int64
	// Refresh, when not nil, adds the refresh sidecar (sidecar.go).
	Refresh *Refresh

	// encoded is Plan as plan.Encode wrote it while Parse validated it, so
	// that Apply need not validate (and compile every pattern) again.
	encoded string
}

var annotationsPath = field.NewPath("metadata", "annotations")

func annotationPath(key string) *field.Path { return annotationsPath.Key(key) }

// omit leaves the bad value out of a field.Invalid message, for details
// that already quote it (the plan package's errors do).
var omit = field.OmitValueType{}

// Requested reports whether the pod opted in: true for "true", false for
// "false" or no annotation, and an error for any other value.
func Requested(pod *corev1.Pod) (bool, *field.Error) {
	v, ok := pod.Annotations[AnnotationInject]
	if !ok {
		return false, nil
	}
	switch v {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, field.NotSupported(annotationPath(AnnotationInject), v, []string{"true", "false"})
}

// secretKeys collects the annotations of one <name>.
type secretKeys struct {
	id    string
	hasID bool
	// other maps a per-secret prefix (KeyPrefix, ...) to its value.
	other map[string]string
}

// Parse reads every secretfetch.io annotation of an opted-in pod into a
// validated Injection. It reports every problem it finds, not only the
// first: one field.Error per bad annotation, and for the pod spec the field
// to set. defaultRegion is the webhook's --default-region ("" for none).
//
// A pod beyond the webhook's limits (see checkLimits) gets one problem, the
// limit, and no further parsing.
func Parse(pod *corev1.Pod, defaultRegion string, opts ...ParseOption) (*Injection, field.ErrorList) {
	if err := checkLimits(pod); err != nil {
		return nil, field.ErrorList{err}
	}
	var errs field.ErrorList
	secrets := map[string]*secretKeys{}
	region, mountPath, containers := "", plan.DefaultDir, ""
	hasRegion, hasContainers := false, false

	// Sorted, so that the denial lists problems in a stable order.
	keys := make([]string, 0, len(pod.Annotations))
	for k := range pod.Annotations {
		if strings.HasPrefix(k, Prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := pod.Annotations[k]
		// The API server only passes valid UTF-8, but the plan is JSON, and
		// JSON would silently replace a bad byte: refuse it here instead.
		if !utf8.ValidString(v) {
			errs = append(errs, field.Invalid(annotationPath(k), omit, "the value is not valid UTF-8"))
			continue
		}
		switch k {
		case AnnotationInject:
			// Requested has read it.
		case AnnotationStatus:
			if v != StatusInjected {
				errs = append(errs, field.Invalid(annotationPath(k), v,
					fmt.Sprintf("only the webhook writes this key, and only the value %q; remove it", StatusInjected)))
			}
		case AnnotationRegion:
			region, hasRegion = v, true
		case AnnotationMountPath:
			mountPath = v
		case AnnotationContainers:
			containers, hasContainers = v, true
		case AnnotationRefreshInterval, AnnotationRefreshNotify, AnnotationRefreshRestart, AnnotationRefreshRestartWindow:
			// parseRefresh and parseRestart read them.
		default:
			if name, ok := strings.CutPrefix(k, SecretPrefix); ok {
				s := secretFor(secrets, name)
				s.id, s.hasID = v, true
				continue
			}
			known := false
			for _, p := range secretKeyPrefixes {
				if name, ok := strings.CutPrefix(k, p); ok {
					secretFor(secrets, name).other[p] = v
					known = true
					break
				}
			}
			if !known {
				errs = append(errs, field.Invalid(annotationPath(k), omit,
					"this is not a secretfetch.io annotation; the keys are "+allowedKeys))
			}
		}
	}

	p := plan.Plan{Version: plan.Version, Dir: mountPath, Subdir: plan.FilesSubdir, Region: defaultRegion}
	if hasRegion {
		p.Region = region
		if region == "" {
			errs = append(errs, field.Invalid(annotationPath(AnnotationRegion), region,
				"the region is empty; set an AWS region such as us-east-1, or remove the annotation to use the default"))
		} else if err := validateRegion(region); err != nil {
			errs = append(errs, field.Invalid(annotationPath(AnnotationRegion), omit, err.Error()))
		}
	}

	names := make([]string, 0, len(secrets))
	for name := range secrets {
		names = append(names, name)
	}
	sort.Strings(names)
	// One allocation: a plan.Secret is a dozen fields, and growing the slice
	// by appends copied it several times per pod.
	p.Secrets = make([]plan.Secret, 0, len(names))
	var byName []string // non-ARN secret names, for the region check
	modeErrors := false
	for _, name := range names {
		s := secrets[name]
		secretPath := annotationPath(SecretPrefix + name)
		if !s.hasID {
			for _, pfx := range secretKeyPrefixes {
				if _, ok := s.other[pfx]; ok {
					errs = append(errs, field.Required(secretPath,
						fmt.Sprintf("%s%s is set, so this secret ID is required too; add it, or remove %s%s", pfx, name, pfx, name)))
				}
			}
			continue
		}
		sec := plan.Secret{File: name, ID: s.id}
		if err := plan.ValidateName(name); err != nil {
			errs = append(errs, field.Invalid(secretPath, omit, "the part after secret- is the file name: "+err.Error()))
		}
		if err := plan.ValidateSecretID(s.id); err != nil {
			errs = append(errs, field.Invalid(secretPath, omit, err.Error()))
		} else if !strings.HasPrefix(s.id, "arn:") {
			byName = append(byName, name)
		}
		if v, ok := s.other[KeyPrefix]; ok {
			sec.Key = v
			if err := plan.ValidateKeyPath(v); err != nil {
				errs = append(errs, field.Invalid(annotationPath(KeyPrefix+name), omit, err.Error()))
			}
		}
		sec.VersionStage = s.other[VersionStagePrefix]
		sec.VersionID = s.other[VersionIDPrefix]
		_, hasStage := s.other[VersionStagePrefix]
		_, hasVersionID := s.other[VersionIDPrefix]
		if hasStage && hasVersionID {
			errs = append(errs, field.Forbidden(annotationPath(VersionIDPrefix+name),
				fmt.Sprintf("cannot be combined with %s%s; set one or the other", VersionStagePrefix, name)))
		}
		if v, ok := s.other[ModePrefix]; ok {
			m, err := plan.ParseMode(v)
			if err != nil {
				modeErrors = true
				errs = append(errs, field.Invalid(annotationPath(ModePrefix+name), omit, err.Error()))
			}
			sec.Mode = m
		}
		// The pattern is checked by Plan.Validate below: compiling an RE2
		// pattern costs more than the rest of a request, so it is done once.
		sec.Pattern = s.other[PatternPrefix]
		p.Secrets = append(p.Secrets, sec)
	}
	if len(p.Secrets) == 0 && len(secrets) == 0 {
		errs = append(errs, field.Required(annotationPath(SecretPrefix+"<name>"),
			"at least one secret is required, for example "+SecretPrefix+"db: prod/db"))
	}
	if p.Region == "" && len(byName) > 0 {
		errs = append(errs, field.Required(annotationPath(AnnotationRegion),
			fmt.Sprintf("%s %s given by name, not by ARN, so a region is needed: set %s, or start the webhook with --default-region",
				plural(len(byName), "secret", "secrets"), quoteList(byName), AnnotationRegion)))
	}

	mountPathField := annotationPath(AnnotationMountPath)
	mountPathOK := true
	if err := plan.ValidateDir(mountPath); err != nil {
		errs = append(errs, field.Invalid(mountPathField, omit, err.Error()))
		mountPathOK = false
	} else if err := checkMountPath(mountPath); err != nil {
		errs = append(errs, field.Invalid(mountPathField, omit, err.Error()))
		mountPathOK = false
	}

	readers, readerErrs := selectReaders(pod, containers, hasContainers)
	errs = append(errs, readerErrs...)
	errs = append(errs, reservedNames(pod)...)
	if len(readerErrs) == 0 {
		errs = append(errs, foreignMounts(pod, readers)...)
		if mountPathOK {
			errs = append(errs, mountCollisions(pod, readers, mountPath)...)
		}
	}

	settings := newParseSettings(opts)
	errs = append(errs, parseOutputs(pod, &p, secrets, readers, settings)...)

	// The plan package owns the checks that have no exported function
	// (region, version stage and version ID formats, and the pattern). Run
	// them all, once, by encoding the plan, and keep only the problems on
	// annotations not already reported above.
	encoded, err := plan.Encode(&p)
	errs = append(errs, planErrors(err, names, secrets, errs)...)
	if len(encoded) > MaxPlanBytes {
		errs = append(errs, field.Invalid(annotationsPath, omit, fmt.Sprintf(
			"these annotations make a plan of %d bytes, and the init container can start with at most %d (one environment variable); use fewer or shorter secrets, keys and patterns",
			len(encoded), MaxPlanBytes)))
	}

	refresh, refreshErrs := parseRefresh(pod, settings)
	errs = append(errs, refreshErrs...)
	errs = append(errs, parseRestart(pod, refresh, settings)...)
	if refresh != nil && len(p.Secrets) > 0 && !slices.ContainsFunc(p.Secrets, refresh.polls) {
		errs = append(errs, field.Invalid(annotationPath(AnnotationRefreshInterval), omit,
			fmt.Sprintf("every secret is pinned by %s<name> or delivered only as an environment variable, which never change in a running container, so the refresh sidecar would have nothing to do; remove %s",
				VersionIDPrefix, AnnotationRefreshInterval)))
	}
	inj := &Injection{Plan: p, Readers: readers, Refresh: refresh, encoded: encoded}
	if len(readerErrs) == 0 && !modeErrors {
		uid, gid, ownerErrs := resolveOwner(pod, readers, p.Secrets)
		errs = append(errs, ownerErrs...)
		inj.UID, inj.GID = uid, gid
	}
	if pod.Spec.OS != nil && pod.Spec.OS.Name == corev1.Windows {
		errs = append(errs, field.Forbidden(field.NewPath("spec", "os", "name"),
			"secretfetch supports Linux pods only: its init container and memory-backed volume are Linux features"))
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return inj, nil
}

func secretFor(m map[string]*secretKeys, name string) *secretKeys {
	s, ok := m[name]
	if !ok {
		s = &secretKeys{other: map[string]string{}}
		m[name] = s
	}
	return s
}

// validateRegion checks a region name with the plan package's own rule,
// which it exposes only through Plan.Validate.
func validateRegion(region string) error {
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
func planErrors(err error, names []string, secrets map[string]*secretKeys, seen field.ErrorList) field.ErrorList {
	if err == nil {
		return nil
	}
	var ve *plan.ValidationError
	if !errors.As(err, &ve) {
		return field.ErrorList{field.InternalError(annotationsPath, fmt.Errorf("validating the plan: %w", err))}
	}
	reported := map[string]bool{}
	for _, e := range seen {
		reported[e.Field] = true
	}
	// p.Secrets holds one entry per name that has a secret- key, in order.
	var files []string
	for _, n := range names {
		if secrets[n].hasID {
			files = append(files, n)
		}
	}
	var out field.ErrorList
	for _, fe := range ve.Errors {
		key := annotationFor(fe.Field, files)
		if key == "" {
			// Version, or at least one secret: handled above.
			continue
		}
		fp := annotationPath(key)
		if reported[fp.String()] {
			continue
		}
		reported[fp.String()] = true
		var value any = omit // the plan's details quote the value...
		if strings.HasPrefix(key, PatternPrefix) {
			value = secrets[strings.TrimPrefix(key, PatternPrefix)].other[PatternPrefix] // ...but not a pattern
		}
		out = append(out, field.Invalid(fp, value, fe.Detail))
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

// protectedDirs are directories that belong to the system, the container
// runtime or Kubernetes. A mount at, under or above one of them would hide
// what the app or its AWS credentials need. /run is listed next to /var/run
// because one is usually a symlink to the other.
var protectedDirs = []string{
	"/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/sbin", "/sys", "/usr",
	"/var/run/secrets/kubernetes.io", "/run/secrets/kubernetes.io",
	"/var/run/secrets/eks.amazonaws.com", "/run/secrets/eks.amazonaws.com",
	"/var/run/secrets/pods.eks.amazonaws.com", "/run/secrets/pods.eks.amazonaws.com",
}

// checkMountPath refuses a clean absolute path that would shadow a protected
// directory.
func checkMountPath(p string) error {
	for _, d := range protectedDirs {
		if within(p, d) {
			return fmt.Errorf("%q is in %s, which belongs to the system or to Kubernetes; use a dedicated directory such as %s", p, d, plan.DefaultDir)
		}
		if within(d, p) {
			return fmt.Errorf("%q would hide %s, which belongs to the system or to Kubernetes; use a dedicated directory such as %s", p, d, plan.DefaultDir)
		}
	}
	return nil
}

// within reports whether the clean absolute path p is dir or below it.
func within(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}

// containerAt finds a container or init container by name.
func containerAt(pod *corev1.Pod, name string) (*corev1.Container, *field.Path) {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i], field.NewPath("spec", "containers").Index(i)
		}
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i], field.NewPath("spec", "initContainers").Index(i)
		}
	}
	return nil, nil
}

// selectReaders returns the containers that get the mount: the ones named
// in the containers annotation, else every app container.
func selectReaders(pod *corev1.Pod, list string, set bool) ([]string, field.ErrorList) {
	if !set {
		readers := make([]string, 0, len(pod.Spec.Containers))
		for _, c := range pod.Spec.Containers {
			readers = append(readers, c.Name)
		}
		return readers, nil
	}
	// Each problem quotes its own entry, never the whole list: a list of
	// thousands of bad entries, each quoting the list, made answers of
	// tens of megabytes. checkLimits has bounded the number of entries.
	fp := annotationPath(AnnotationContainers)
	var errs field.ErrorList
	var readers []string
	emptyReported, has := false, ""
	for _, raw := range strings.Split(list, ",") {
		name := strings.TrimSpace(raw)
		switch c, _ := containerAt(pod, name); {
		case name == "":
			if !emptyReported {
				errs = append(errs, field.Invalid(fp, list, "an entry is empty; list container names separated by commas"))
				emptyReported = true
			}
		case name == InitContainerName:
			errs = append(errs, field.Invalid(fp, name, fmt.Sprintf("%s is the webhook's own init container; list the containers that read the secrets", InitContainerName)))
		case name == RefreshContainerName:
			errs = append(errs, field.Invalid(fp, name, fmt.Sprintf("%s is the webhook's own refresh sidecar; list the containers that read the secrets", RefreshContainerName)))
		case c == nil:
			if has == "" {
				has = quoteList(containerNames(pod))
			}
			errs = append(errs, field.Invalid(fp, name, fmt.Sprintf("names no container or init container in this pod (it has %s)", has)))
		case slices.Contains(readers, name):
			errs = append(errs, field.Duplicate(fp, name))
		default:
			readers = append(readers, name)
		}
	}
	return readers, errs
}

func containerNames(pod *corev1.Pod) []string {
	var names []string
	for _, c := range pod.Spec.InitContainers {
		if c.Name != InitContainerName {
			names = append(names, c.Name)
		}
	}
	for _, c := range pod.Spec.Containers {
		names = append(names, c.Name)
	}
	return names
}

// reservedNames refuses a pod that uses the webhook's names for something
// else, rather than silently replacing it.
func reservedNames(pod *corev1.Pod) field.ErrorList {
	var errs field.ErrorList
	for i, v := range pod.Spec.Volumes {
		if v.Name == VolumeName && v.EmptyDir == nil {
			errs = append(errs, field.Invalid(field.NewPath("spec", "volumes").Index(i).Child("name"), v.Name,
				"this volume name is reserved for secretfetch's memory-backed emptyDir; rename the volume"))
		}
	}
	for i, c := range pod.Spec.Containers {
		if c.Name == InitContainerName {
			errs = append(errs, field.Invalid(field.NewPath("spec", "containers").Index(i).Child("name"), c.Name,
				"this container name is reserved for secretfetch's init container; rename the container"))
		}
	}
	return errs
}

// foreignMounts refuses a mount of the secrets volume that the webhook did
// not make: one in a container that is not a reader (it would see the files
// the pod owner did not give it, or write them), or a second one in a
// reader (it could be read-write, or at another path). The one mount in each
// reader is the webhook's to set, read-only, at the mount path.
func foreignMounts(pod *corev1.Pod, readers []string) field.ErrorList {
	var errs field.ErrorList
	check := func(cs []corev1.Container, base *field.Path, init bool) {
		for i := range cs {
			c := &cs[i]
			if init && ownContainer(c.Name) {
				// Rebuilt by Apply (a stray refresh sidecar is denied by
				// parseRefresh). An app container of that name is the pod's.
				continue
			}
			reader, mounts := slices.Contains(readers, c.Name), 0
			// Cut once and quoted per mount: whole, one long name with
			// thousands of mounts made gigabytes of messages.
			name := truncate(c.Name, maxQuoted)
			for j, m := range c.VolumeMounts {
				if m.Name != VolumeName {
					continue
				}
				mounts++
				mp := base.Index(i).Child("volumeMounts").Index(j)
				switch {
				case !reader:
					errs = append(errs, field.Forbidden(mp, fmt.Sprintf(
						"container %q mounts the secrets volume %s, but it is not one of the containers that read the secrets; remove the mount, or list the container in %s",
						name, VolumeName, AnnotationContainers)))
				case mounts > 1:
					errs = append(errs, field.Forbidden(mp, fmt.Sprintf(
						"container %q mounts the secrets volume %s more than once; the webhook makes the one read-only mount itself, so remove this one",
						name, VolumeName)))
				}
			}
		}
	}
	check(pod.Spec.InitContainers, field.NewPath("spec", "initContainers"), true)
	check(pod.Spec.Containers, field.NewPath("spec", "containers"), false)
	return errs
}

// mountCollisions refuses a mount path that equals, contains or lies inside
// a path the reader already mounts something at: one of the two mounts
// would hide the other.
func mountCollisions(pod *corev1.Pod, readers []string, mountPath string) field.ErrorList {
	var errs field.ErrorList
	// What the messages quote is cut first: each colliding mount is one
	// message, and whole, a long mount path or container name is repeated
	// in every one of them.
	quotedPath := truncate(mountPath, maxQuoted)
	for _, name := range readers {
		c, cp := containerAt(pod, name)
		quotedName := truncate(name, maxQuoted)
		for i, m := range c.VolumeMounts {
			if m.Name == VolumeName {
				continue // ours, from an earlier invocation
			}
			mp := path.Clean(m.MountPath)
			if within(mountPath, mp) || within(mp, mountPath) {
				errs = append(errs, field.Invalid(annotationPath(AnnotationMountPath), omit,
					fmt.Sprintf("%q collides with the mount of volume %q at %q in container %q (%s); choose another directory",
						quotedPath, truncate(m.Name, maxQuoted), truncate(m.MountPath, maxQuoted), quotedName, cp.Child("volumeMounts").Index(i))))
			}
		}
	}
	return errs
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
