package mutate

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	"github.com/secretfetch/secretfetch/internal/plan"
	"github.com/secretfetch/secretfetch/internal/render"
	"github.com/secretfetch/secretfetch/internal/restart"
)

// Environment variables the webhook sets on the init container.
const (
	// EnvSecretsManagerEndpoint and EnvSTSEndpoint are the AWS SDK's
	// service-specific endpoint variables.
	EnvSecretsManagerEndpoint = "AWS_ENDPOINT_URL_SECRETS_MANAGER"
	EnvSTSEndpoint            = "AWS_ENDPOINT_URL_STS"
	// EnvFailoverEndpoint is init-fetch's endpoint of Secrets Manager in
	// the failover region (plan.EnvFailoverEndpoint).
	EnvFailoverEndpoint = plan.EnvFailoverEndpoint
	// EnvFailoverSTSEndpoint is the STS endpoint there, for IRSA
	// (plan.EnvFailoverSTSEndpoint).
	EnvFailoverSTSEndpoint = plan.EnvFailoverSTSEndpoint
	// EnvNoInstanceMetadata switches off the SDK's EC2 instance metadata
	// credentials in the init container (see Config.AllowNodeCredentials).
	EnvNoInstanceMetadata = "AWS_EC2_METADATA_DISABLED"
)

// The AWS credential settings copied from the app containers. Only these
// are copied: they name an identity and a token file, never a secret.
const (
	envRoleARN             = "AWS_ROLE_ARN"
	envWebIdentityToken    = "AWS_WEB_IDENTITY_TOKEN_FILE"
	envContainerCredsURI   = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
	envContainerCredsToken = "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"
)

// regionEnv follows the credentials: the IRSA and Pod Identity webhooks set
// them next to the identity, and the SDK needs them to reach the right STS.
var regionEnv = []string{"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_STS_REGIONAL_ENDPOINTS"}

// Config holds the webhook's cluster-wide settings for the init container.
// They come from the webhook's flags.
type Config struct {
	// InitImage is the init-fetch image (--init-image); required.
	InitImage string
	// DefaultRegion is the region for secrets given by name when the pod sets
	// no secretfetch.io/region (--default-region).
	DefaultRegion string
	// SecretsManagerEndpoint and STSEndpoint, when set, become the SDK's
	// endpoint variables in the init container: VPC endpoints, FIPS, or a
	// test fake (--secretsmanager-endpoint, --sts-endpoint).
	SecretsManagerEndpoint string
	STSEndpoint            string
	// DefaultFailoverRegion is the failover region of pods that set no
	// secretfetch.io/failover-region (--default-failover-region), and
	// FailoverEndpoint the Secrets Manager endpoint there, when the SDK's
	// own is not the one (--failover-secretsmanager-endpoint).
	DefaultFailoverRegion string
	FailoverEndpoint      string
	// FailoverSTSEndpoint is the STS endpoint in the failover region, for
	// IRSA, when the SDK's own is not the one (--failover-sts-endpoint).
	FailoverSTSEndpoint string
	// VolumeSizeLimit overrides the emptyDir's sizeLimit
	// (--volume-size-limit). Nil sizes it from the number of secrets.
	VolumeSizeLimit *resource.Quantity
	// InitResources overrides the init container's requests and limits,
	// resource by resource (--init-resources); what it leaves out keeps the
	// default of initResources. Only cpu and memory may be set.
	InitResources corev1.ResourceRequirements
	// AllowNodeCredentials lets init-fetch fall back to the node's instance
	// role through EC2 instance metadata (--allow-node-credentials). It is
	// off by default: the node's role is shared by every pod on the node, so
	// a pod without IRSA or Pod Identity fails with NoCredentials instead of
	// quietly reading secrets with more privilege than its own.
	AllowNodeCredentials bool
	// MinRefreshInterval is the shortest secretfetch.io/refresh-interval a
	// pod may ask for (--min-refresh-interval); 0 means
	// DefaultMinRefreshInterval.
	MinRefreshInterval time.Duration
	// NoEnvFiles says the cluster lacks EnvFiles (fileKeyRef; beta and on
	// by default since Kubernetes 1.35), from --env-files=false: env-<name>
	// is then denied. The zero value, EnvFiles on, fits current clusters.
	NoEnvFiles bool
	// NoEnvFilesWhy says why EnvFiles is off, for the denial: the cluster's
	// version; empty for --env-files=false.
	NoEnvFilesWhy string
	// Restart holds restart on change (secretfetch.io/refresh-restart):
	// whether the cluster can, and the default window and the spacing.
	Restart RestartConfig
}

// Validate checks the settings once at start-up, so that a bad flag stops
// the webhook instead of every pod.
func (c Config) Validate() error {
	var errs []error
	if c.InitImage == "" {
		errs = append(errs, errors.New("the init image is required (--init-image)"))
	}
	if c.DefaultRegion != "" {
		if err := validateRegion(c.DefaultRegion); err != nil {
			errs = append(errs, fmt.Errorf("default region (--default-region): %w", err))
		}
	}
	if c.DefaultFailoverRegion != "" {
		if err := validateRegion(c.DefaultFailoverRegion); err != nil {
			errs = append(errs, fmt.Errorf("default failover region (--default-failover-region): %w", err))
		}
	}
	for flag, v := range map[string]string{"--secretsmanager-endpoint": c.SecretsManagerEndpoint, "--sts-endpoint": c.STSEndpoint,
		"--failover-secretsmanager-endpoint": c.FailoverEndpoint, "--failover-sts-endpoint": c.FailoverSTSEndpoint} {
		if v == "" {
			continue
		}
		if u, err := url.Parse(v); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s: %q is not an http or https URL", flag, v))
		}
	}
	if c.VolumeSizeLimit != nil && c.VolumeSizeLimit.Sign() <= 0 {
		errs = append(errs, fmt.Errorf("--volume-size-limit: %s is not a positive size", c.VolumeSizeLimit))
	}
	if err := validateInitResources(c.InitResources); err != nil {
		errs = append(errs, fmt.Errorf("--init-resources: %w", err))
	}
	if err := c.validateRefresh(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Restart.validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

const (
	// maxSecretSize is AWS's cap on a secret value (SecretString or
	// SecretBinary).
	maxSecretSize = 64 << 10
	// minVolumeSize keeps a small volume from being a tight fit for the
	// filesystem's own overhead.
	minVolumeSize = 1 << 20
)

// volumeSize is the emptyDir's sizeLimit: room for the largest set of files
// the plan can write, twice. A new set is written in full before the old
// one is removed (WriteSet's swap, by the refresh sidecar or by an init
// container that the kubelet restarts on the volume of a failed attempt),
// so two sets are on the volume at once. tmpfs counts whole pages.
//
// A file holds at most AWS's 64 KiB, and a rendered file at most
// render.MaxSize of it; an env-only secret writes no file here. Each set
// also carries the refresh state (IDs, file names and version IDs). With
// restart on change, the refresh sidecar keeps a marker in the volume's root,
// and rewrites it through a temporary file: two of them at their largest.
func volumeSize(cfg Config, p *plan.Plan, restartMarker bool) resource.Quantity {
	if cfg.VolumeSizeLimit != nil {
		return cfg.VolumeSizeLimit.DeepCopy()
	}
	var set, state int64 = 0, stateOverhead
	for _, s := range p.Secrets {
		state += int64(len(s.ID)+len(s.File)) + stateOverheadPerFile
		if s.NoFile {
			continue
		}
		size := int64(maxSecretSize)
		if s.Format != "" {
			size = int64(render.MaxSize(maxSecretSize))
		}
		set += pages(size)
	}
	set += pages(state)
	size := 2 * set
	if restartMarker {
		size += 2 * pages(restart.MaxMarker)
	}
	return *resource.NewQuantity(max(minVolumeSize, size), resource.BinarySI)
}

const (
	// pageSize is the unit that tmpfs counts a file's size in.
	pageSize = 4 << 10
	// stateOverhead and stateOverheadPerFile bound the JSON of the refresh
	// state around the IDs and file names: field names, quotes, and a
	// version ID of at most 64 characters per file.
	stateOverhead        = 64
	stateOverheadPerFile = 128
)

// pages rounds n bytes up to whole pages.
func pages(n int64) int64 { return (n + pageSize - 1) / pageSize * pageSize }

// initResources are the init container's requests and limits. The requests
// are small so that the pod schedules as if the init container were not
// there. The CPU limit is generous because start-up is TLS handshakes and
// JSON parsing; a tight limit would throttle them and delay every pod. The
// memory limit grows with the volume, because tmpfs pages count against the
// memory cgroup of the process that writes them: the init container's.
func initResources(volume resource.Quantity) corev1.ResourceRequirements {
	const mi = 1 << 20
	memLimit := (64*mi + volume.Value() + mi - 1) / mi * mi // rounded up to whole MiB
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("10m"),
			corev1.ResourceMemory: resource.MustParse("16Mi"),
		},
		Limits: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("500m"),
			corev1.ResourceMemory: *resource.NewQuantity(memLimit, resource.BinarySI),
		},
	}
}

// withOverrides sets, resource by resource, what the cluster's settings
// (--init-resources) give, over the defaults in r.
func withOverrides(r, override corev1.ResourceRequirements) corev1.ResourceRequirements {
	for name, q := range override.Requests {
		r.Requests[name] = q.DeepCopy()
	}
	for name, q := range override.Limits {
		r.Limits[name] = q.DeepCopy()
	}
	return r
}

// validateInitResources checks --init-resources: cpu and memory only,
// positive, and no request above its limit (where both are set). A memory
// limit below the secrets volume makes the init container's writes fail,
// and so the pod, closed; that is the operator's to size.
func validateInitResources(r corev1.ResourceRequirements) error {
	var errs []error
	for _, list := range []struct {
		name string
		l    corev1.ResourceList
	}{{"requests", r.Requests}, {"limits", r.Limits}} {
		for name, q := range list.l {
			if name != corev1.ResourceCPU && name != corev1.ResourceMemory {
				errs = append(errs, fmt.Errorf("%s.%s: only cpu and memory can be set", list.name, name))
			} else if q.Sign() <= 0 {
				errs = append(errs, fmt.Errorf("%s.%s: %s is not a positive quantity", list.name, name, q.String()))
			}
		}
	}
	// Without a limit of its own, a request meets the default limit, at its
	// smallest (the smallest volume).
	defaults := initResources(*resource.NewQuantity(minVolumeSize, resource.BinarySI))
	for name, req := range r.Requests {
		if lim, ok := r.Limits[name]; ok && req.Cmp(lim) > 0 {
			errs = append(errs, fmt.Errorf("requests.%s (%s) is above limits.%s (%s)", name, req.String(), name, lim.String()))
		} else if lim := defaults.Limits[name]; !ok && req.Cmp(lim) > 0 {
			errs = append(errs, fmt.Errorf("requests.%s (%s) is above the default limit (%s); set limits.%s too", name, req.String(), lim.String(), name))
		}
	}
	if len(r.Claims) > 0 {
		errs = append(errs, errors.New("claims: cannot be set"))
	}
	return errors.Join(errs...)
}

// initSecurityContext passes the restricted Pod Security Standard.
func initSecurityContext(uid, gid int64) *corev1.SecurityContext {
	return &corev1.SecurityContext{
		RunAsNonRoot:             ptr.To(true),
		RunAsUser:                ptr.To(uid),
		RunAsGroup:               ptr.To(gid),
		AllowPrivilegeEscalation: ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// Apply mutates pod to fetch inj's secrets. It is a pure function of the
// pod, inj and cfg, and idempotent: applied to its own result it changes
// nothing, except that it copies the app containers' current AWS credential
// settings into the init container again. The init container is rebuilt
// whole on every pass (see initContainer); every other edit is add-if-absent
// or an update in place: no volume, mount, env var or container is
// duplicated or removed.
//
// inj is used as Parse returned it.
func Apply(pod *corev1.Pod, inj *Injection, cfg Config) error {
	encoded := inj.encoded
	if encoded == "" {
		var err error
		if encoded, err = plan.Encode(&inj.Plan); err != nil {
			return fmt.Errorf("encoding the plan: %w", err)
		}
	}
	size := volumeSize(cfg, &inj.Plan, inj.Refresh != nil && inj.Refresh.Restart != nil)
	ensureVolume(pod, VolumeName, size)
	setInitContainer(pod, initContainer(pod, inj, cfg, encoded, size))

	for _, name := range inj.Readers {
		if c, _ := containerAt(pod, name); c != nil {
			setVolumeMount(c, readerMount(&inj.Plan))
		}
	}

	applyRefresh(pod, inj)
	applyEnvFiles(pod, inj)

	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[AnnotationStatus] = StatusInjected
	return nil
}

// ensureVolume adds the memory-backed emptyDir of that name (the secrets
// volume, or the env file's), or brings it up to date.
func ensureVolume(pod *corev1.Pod, name string, size resource.Quantity) {
	src := corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: &size}}
	for i := range pod.Spec.Volumes {
		if pod.Spec.Volumes[i].Name == name {
			pod.Spec.Volumes[i].VolumeSource = src
			return
		}
	}
	pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: name, VolumeSource: src})
}

// initContainer builds the init container whole, from the plan and the
// settings, plus the AWS credential settings and token mount it copies from
// the app containers. Nothing of a container already named
// InitContainerName survives: a pod could otherwise declare one with
// restartPolicy: Always (a sidecar, so the app starts before the files
// exist), extra args such as --allow-non-tmpfs, envFrom, probes or extra
// mounts, and the webhook would fill in the rest and vouch for it.
func initContainer(pod *corev1.Pod, inj *Injection, cfg Config, encoded string, size resource.Quantity) corev1.Container {
	init := corev1.Container{
		Name:    InitContainerName,
		Image:   cfg.InitImage,
		Command: []string{InitCommand},
		// The API server's default, set here so that a reinvocation finds
		// the container it built and changes nothing.
		TerminationMessagePath:   corev1.TerminationMessagePathDefault,
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		ImagePullPolicy:          corev1.PullIfNotPresent,
		SecurityContext:          initSecurityContext(inj.UID, inj.GID),
		Resources:                withOverrides(initResources(size), cfg.InitResources),
	}
	setEnv(&init, plan.EnvVar, encoded)
	if cfg.SecretsManagerEndpoint != "" {
		setEnv(&init, EnvSecretsManagerEndpoint, cfg.SecretsManagerEndpoint)
	}
	if cfg.STSEndpoint != "" {
		setEnv(&init, EnvSTSEndpoint, cfg.STSEndpoint)
	}
	if cfg.FailoverEndpoint != "" && inj.Plan.FailoverRegion != "" {
		setEnv(&init, EnvFailoverEndpoint, cfg.FailoverEndpoint)
	}
	if cfg.FailoverSTSEndpoint != "" && inj.Plan.FailoverRegion != "" {
		setEnv(&init, EnvFailoverSTSEndpoint, cfg.FailoverSTSEndpoint)
	}
	if !cfg.AllowNodeCredentials {
		setEnv(&init, EnvNoInstanceMetadata, "true")
	}
	// The volume's root, read-write: init-fetch makes Plan.Subdir in it.
	setVolumeMount(&init, corev1.VolumeMount{Name: VolumeName, MountPath: inj.Plan.Dir})
	copyCredentials(pod, &init)
	return init
}

// setInitContainer puts c in place of the init container of its name, or
// first when there is none. An existing one keeps its place: another webhook
// may have put its own init container in front since, and moving ours back
// on reinvocation would only make the two webhooks fight over the first
// slot.
func setInitContainer(pod *corev1.Pod, c corev1.Container) {
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == c.Name {
			pod.Spec.InitContainers[i] = c
			return
		}
	}
	pod.Spec.InitContainers = append([]corev1.Container{c}, pod.Spec.InitContainers...)
}

// setEnv sets a literal variable, replacing every entry of that name (the
// kubelet would use the last one).
func setEnv(c *corev1.Container, name, value string) {
	setEnvVar(c, corev1.EnvVar{Name: name, Value: value}, nil)
}

// setEnvVar gives v's value and source to every entry of its name that
// replace accepts (every one when replace is nil), or appends v when there
// is none.
func setEnvVar(c *corev1.Container, v corev1.EnvVar, replace func(corev1.EnvVar) bool) {
	found := false
	for i := range c.Env {
		if c.Env[i].Name == v.Name && (replace == nil || replace(c.Env[i])) {
			c.Env[i].Value, c.Env[i].ValueFrom = v.Value, v.ValueFrom
			found = true
		}
	}
	if !found {
		c.Env = append(c.Env, v)
	}
}

// literalEnv returns the literal value of a variable; valueFrom entries do
// not count.
func literalEnv(c *corev1.Container, name string) (string, bool) {
	v, ok := "", false
	for _, e := range c.Env {
		if e.Name == name {
			v, ok = e.Value, e.ValueFrom == nil && e.Value != ""
		}
	}
	return v, ok
}

// readerMount is an app container's mount of the secrets volume: read-only,
// and only the directory that holds the layout (Plan.Subdir), not the
// volume's root. The kubelet makes a memory emptyDir's root sticky and
// world-writable; a symlink there can be followed only by its owner when
// fs.protected_symlinks=1 (the nodes' default), root included. Plan.Subdir
// belongs to init-fetch's UID and is not world-writable, so every reader
// that the file modes admit can follow <name> -> ..data/<name>.
//
// A subPath of a directory is a bind mount of that directory: a swap of
// ..data inside it is seen at once. init-fetch makes the directory before
// any reader starts (secretfetch-init runs first), so the kubelet, which
// would make a missing subPath with the root's world-writable mode, never
// has to.
func readerMount(p *plan.Plan) corev1.VolumeMount {
	return corev1.VolumeMount{Name: VolumeName, MountPath: p.Dir, SubPath: p.Subdir, ReadOnly: true}
}

// setVolumeMount sets m, a mount of the secrets volume, or replaces the
// existing mount of it whole (no subPath, propagation or other setting of
// the pod's survives). Parse has refused a second mount of it in one
// container.
func setVolumeMount(c *corev1.Container, m corev1.VolumeMount) {
	for i := range c.VolumeMounts {
		if c.VolumeMounts[i].Name == VolumeName {
			c.VolumeMounts[i] = m
			return
		}
	}
	c.VolumeMounts = append(c.VolumeMounts, m)
}

// copyCredentials copies the IRSA and EKS Pod Identity settings of the
// first app container that has them into the init container, with the
// mount that holds the token file. Only literal values are copied, and they
// are never logged.
func copyCredentials(pod *corev1.Pod, init *corev1.Container) {
	var sources []*corev1.Container
	for _, pair := range [][2]string{{envRoleARN, envWebIdentityToken}, {envContainerCredsURI, envContainerCredsToken}} {
		src := firstWith(pod, pair[0], pair[1])
		if src == nil {
			continue
		}
		sources = append(sources, src)
		for _, name := range pair {
			v, _ := literalEnv(src, name)
			setEnv(init, name, v)
		}
		tokenFile, _ := literalEnv(src, pair[1])
		if m, ok := tokenMount(src, tokenFile); ok {
			setCopiedMount(init, m)
		}
	}
	for _, name := range regionEnv {
		for _, src := range sources {
			if v, ok := literalEnv(src, name); ok {
				setEnv(init, name, v)
				break
			}
		}
	}
}

// firstWith returns the first app container with literal values for both
// variables.
func firstWith(pod *corev1.Pod, a, b string) *corev1.Container {
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		_, okA := literalEnv(c, a)
		_, okB := literalEnv(c, b)
		if okA && okB {
			return c
		}
	}
	return nil
}

// tokenMount finds the mount that holds a token file: the one at the file's
// directory, else the deepest one that contains the file.
func tokenMount(c *corev1.Container, tokenFile string) (corev1.VolumeMount, bool) {
	if !path.IsAbs(tokenFile) {
		return corev1.VolumeMount{}, false
	}
	file := path.Clean(tokenFile)
	best, found := corev1.VolumeMount{}, false
	for _, m := range c.VolumeMounts {
		mp := path.Clean(m.MountPath)
		if mp == file || !within(file, mp) {
			continue
		}
		if !found || len(mp) > len(path.Clean(best.MountPath)) {
			best, found = m, true
		}
	}
	return best, found
}

// setCopiedMount adds a copied credential mount, or updates the init
// container's mount at the same path.
func setCopiedMount(c *corev1.Container, m corev1.VolumeMount) {
	m.ReadOnly = true // a token is only read
	for i := range c.VolumeMounts {
		if path.Clean(c.VolumeMounts[i].MountPath) == path.Clean(m.MountPath) {
			c.VolumeMounts[i] = m
			return
		}
	}
	c.VolumeMounts = append(c.VolumeMounts, m)
}
