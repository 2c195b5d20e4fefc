package initfetch

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/secretfetch/secretfetch/internal/grammar"
	"github.com/secretfetch/secretfetch/internal/plan"
)

// The policy mode. A MutatingAdmissionPolicy cannot run the grammar, so it
// gives init-fetch no encoded plan: it mounts the pod's annotations as a
// downward-API file and sets the variables below, and init-fetch parses the
// annotations with the grammar the webhook uses. A problem that admission
// could not see fails the container with the webhook's denial message.
const (
	// EnvAnnotationsFile is the downward-API file of the pod's annotations
	// (fieldPath metadata.annotations).
	EnvAnnotationsFile = "SECRETFETCH_ANNOTATIONS_FILE"
	// DefaultAnnotationsFile is read when EnvAnnotationsFile is not set and
	// the file exists.
	DefaultAnnotationsFile = "/var/run/secretfetch-podinfo/annotations"
	// EnvContainers and EnvInitContainers are the names of the pod's
	// containers and init containers, comma-separated, in order: the
	// grammar checks secretfetch.io/containers against them.
	EnvContainers     = "SECRETFETCH_CONTAINERS"
	EnvInitContainers = "SECRETFETCH_INIT_CONTAINERS"
	// The settings, as the webhook's flags of the same names: the default
	// region and failover region, the least refresh interval (a Go
	// duration; default 1m), "false" when the cluster lacks EnvFiles,
	// "false" to turn restart on change off, and its default window (a Go
	// duration; default 10m).
	EnvDefaultRegion         = "SECRETFETCH_DEFAULT_REGION"
	EnvDefaultFailoverRegion = "SECRETFETCH_DEFAULT_FAILOVER_REGION"
	EnvMinRefreshInterval    = "SECRETFETCH_MIN_REFRESH_INTERVAL"
	EnvEnvFiles              = "SECRETFETCH_ENV_FILES"
	EnvRefreshRestart        = "SECRETFETCH_REFRESH_RESTART"
	EnvRefreshRestartWindow  = "SECRETFETCH_REFRESH_RESTART_WINDOW"

	// maxAnnotationsFile bounds the file. The API server caps a pod's
	// annotations at 256 KiB; quoting at most quadruples a byte (\x00).
	maxAnnotationsFile = 4 * 256 << 10
)

// annotationsFile returns the annotations file of the policy mode, or ""
// when init-fetch does not run in it.
func annotationsFile(getenv func(string) string) string {
	if f := getenv(EnvAnnotationsFile); f != "" {
		return f
	}
	if _, err := os.Stat(DefaultAnnotationsFile); err == nil {
		return DefaultAnnotationsFile
	}
	return ""
}

// planFromAnnotations builds the plan from the pod's annotations in path,
// with the grammar and the settings in the environment. The pod's problems
// come back as a *grammar.ParseError, whose text is the webhook's denial.
func planFromAnnotations(path string, getenv func(string) string) (*plan.Plan, error) {
	data, err := readAnnotationsFile(path)
	if err != nil {
		return nil, err
	}
	annotations, err := ParseAnnotations(data)
	if err != nil {
		return nil, fmt.Errorf("reading the pod's annotations from %s: %w", path, err)
	}
	settings, err := policySettings(getenv)
	if err != nil {
		return nil, err
	}
	in := grammar.Input{Annotations: annotations,
		Containers: containerList(getenv(EnvContainers)), InitContainers: containerList(getenv(EnvInitContainers))}
	if ok, perr := grammar.Requested(annotations); perr != nil {
		return nil, &grammar.ParseError{Problems: grammar.ErrorList{perr}}
	} else if !ok {
		return nil, fmt.Errorf("the pod's annotations in %s do not opt in (%s: \"true\"); there is nothing to fetch", path, grammar.AnnotationInject)
	}
	res, problems := grammar.Parse(in, settings, nil)
	if len(problems) > 0 {
		return nil, &grammar.ParseError{Problems: problems}
	}
	return &res.Plan, nil
}

func readAnnotationsFile(path string) ([]byte, error) {
	file, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no plan: %s is not set, and the pod's annotations are not at %s (mount them with the downward API, fieldPath metadata.annotations)", plan.EnvVar, path)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the pod's annotations: %w", err)
	}
	defer file.Close()
	data, err := io.ReadAll(io.LimitReader(file, maxAnnotationsFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading the pod's annotations from %s: %w", path, err)
	}
	if len(data) > maxAnnotationsFile {
		return nil, fmt.Errorf("reading the pod's annotations from %s: larger than %d bytes", path, maxAnnotationsFile)
	}
	return data, nil
}

// ParseAnnotations reads the kubelet's downward-API form of a map
// (k8s.io/kubernetes/pkg/fieldpath.FormatMap): one key="value" per line,
// the value quoted as Go's strconv.Quote does, lines sorted by key.
func ParseAnnotations(data []byte) (map[string]string, error) {
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, maxAnnotationsFile+1)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		key, quoted, ok := strings.Cut(line, "=")
		if !ok || key == "" {
			return nil, fmt.Errorf("line %d is not key=\"value\"", n)
		}
		v, err := strconv.Unquote(quoted)
		if err != nil || !strings.HasPrefix(quoted, `"`) {
			return nil, fmt.Errorf("line %d: the value of %s is not a quoted string", n, key)
		}
		if _, dup := m[key]; dup {
			return nil, fmt.Errorf("line %d: %s appears twice", n, key)
		}
		m[key] = v
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return m, nil
}

// containerList splits a comma-separated list of container names.
func containerList(list string) []string {
	var out []string
	for _, n := range strings.Split(list, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// policySettings reads the grammar's settings from the environment. The
// policy mode needs Kubernetes 1.36+, which restarts pods in place, so
// restart on change is on unless turned off.
func policySettings(getenv func(string) string) (grammar.Settings, error) {
	s := grammar.Settings{Restart: grammar.RestartSettings{Enabled: true}}
	var errs []error
	for name, region := range map[string]*string{EnvDefaultRegion: &s.DefaultRegion, EnvDefaultFailoverRegion: &s.DefaultFailoverRegion} {
		*region = getenv(name)
		if *region == "" {
			continue
		}
		if err := grammar.ValidateRegion(*region); err != nil {
			errs = append(errs, fmt.Errorf("$%s: %w", name, err))
		}
	}
	duration := func(name string, into *time.Duration) {
		v := getenv(name)
		if v == "" {
			return
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			errs = append(errs, fmt.Errorf("$%s: %q is not a Go duration such as 1m", name, v))
			return
		}
		*into = d
	}
	duration(EnvMinRefreshInterval, &s.MinRefreshInterval)
	if s.MinRefreshInterval != 0 && s.MinRefreshInterval < minRefreshInterval {
		errs = append(errs, fmt.Errorf("$%s: %v is shorter than %v", EnvMinRefreshInterval, s.MinRefreshInterval, minRefreshInterval))
	}
	duration(EnvRefreshRestartWindow, &s.Restart.Window)
	if s.Restart.Window != 0 {
		if err := plan.ValidateRestartWindow(s.Restart.Window); err != nil {
			errs = append(errs, fmt.Errorf("$%s: %w", EnvRefreshRestartWindow, err))
		}
	}
	boolean := func(name string) bool {
		switch v := getenv(name); v {
		case "", "true":
			return true
		case "false":
			return false
		default:
			errs = append(errs, fmt.Errorf("$%s: %q is neither \"true\" nor \"false\"", name, v))
			return true
		}
	}
	s.NoEnvFiles = !boolean(EnvEnvFiles)
	if !boolean(EnvRefreshRestart) {
		s.Restart = grammar.RestartSettings{Why: "the policy's parameters turn it off (" + EnvRefreshRestart + "=false)"}
	}
	if err := errors.Join(errs...); err != nil {
		return grammar.Settings{}, fmt.Errorf("reading the policy mode's settings: %w", err)
	}
	return s, nil
}
