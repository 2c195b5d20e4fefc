package grammar

// The annotation keys that make up the user's contract (docs: design.md, "The
// user's contract: annotations"). They go on the pod template. Only this
// package reads them; everything after it works on the typed Result.
//
// A new annotation is a constant here, a line in allowedKeys, and one small
// parser called from Parse.
const (
	// Prefix is the common prefix of every secretfetch annotation. Any other
	// key under it is an error, so that a typo is reported, not ignored.
	Prefix = "secretfetch.io/"

	// AnnotationInject opts a pod in with "true". "false" passes the pod
	// through unchanged; any other value is denied, so that "yes" is an
	// error rather than a silent skip.
	AnnotationInject = Prefix + "inject"

	// AnnotationRegion is the AWS region for secrets given by name. An ARN's
	// own region always wins. Default: Settings.DefaultRegion.
	AnnotationRegion = Prefix + "region"

	// AnnotationFailoverRegion is the region of the secrets' replicas,
	// read when the pod's region cannot answer (connection errors, 5xx,
	// throttling past the retries; never a denial or a missing secret).
	// Default: Settings.DefaultFailoverRegion.
	AnnotationFailoverRegion = Prefix + "failover-region"

	// AnnotationBatch, "true", fetches the secrets' current versions up to
	// 20 a call with BatchGetSecretValue, in the init container and in
	// refresh polls.
	AnnotationBatch = Prefix + "batch"

	// AnnotationMountPath is the absolute directory, in the selected
	// containers, that holds one file per secret. Default: plan.DefaultDir.
	AnnotationMountPath = Prefix + "mount-path"

	// AnnotationContainers is a comma-separated list of the containers (init
	// containers included) that get the read-only mount. Default: every app
	// container (spec.containers).
	AnnotationContainers = Prefix + "containers"

	// AnnotationRefreshInterval turns refresh on: a Go duration between
	// Settings.MinRefreshInterval and plan.MaxRefreshInterval. The pod then
	// gets the refresh sidecar.
	AnnotationRefreshInterval = Prefix + "refresh-interval"

	// AnnotationRefreshNotify is a loopback URL (http://127.0.0.1:<port>/
	// <path>) that the refresh sidecar POSTs to after each swap. It needs
	// AnnotationRefreshInterval.
	AnnotationRefreshNotify = Prefix + "refresh-notify"

	// AnnotationRefreshRestart, "true", restarts the pod's containers in
	// place once the refresh sidecar has checked a new version of any of its
	// secrets, so that apps that read a file once, or an environment
	// variable, start again with the new value (restart.go). It needs
	// AnnotationRefreshInterval, and Kubernetes 1.36+.
	AnnotationRefreshRestart = Prefix + "refresh-restart"

	// AnnotationRefreshRestartWindow spreads the restarts of a workload's
	// pods over this Go duration (0s: at once). Default:
	// Settings.Restart.Window.
	AnnotationRefreshRestartWindow = Prefix + "refresh-restart-window"

	// AnnotationStatus is written by the webhook (or the policy); its only
	// value is StatusInjected. Users do not set it.
	AnnotationStatus = Prefix + "status"

	// StatusInjected marks a mutated pod.
	StatusInjected = "injected"
)

// Per-secret annotation key prefixes. The rest of the key, <name>, is the
// file name (see plan.ValidateName). Every per-secret key other than
// secret-<name> needs a secret-<name> with the same name.
const (
	// SecretPrefix + <name>: the secret ID (full ARN, partial ARN or name).
	SecretPrefix = Prefix + "secret-"
	// KeyPrefix + <name>: a dotted path into a JSON SecretString.
	KeyPrefix = Prefix + "key-"
	// VersionStagePrefix + <name>: a staging label such as AWSPREVIOUS.
	VersionStagePrefix = Prefix + "version-stage-"
	// VersionIDPrefix + <name>: a version ID; not combined with a stage.
	VersionIDPrefix = Prefix + "version-id-"
	// ModePrefix + <name>: the file mode, one of plan.AllowedModes.
	ModePrefix = Prefix + "mode-"
	// PatternPrefix + <name>: an RE2 pattern the whole value must match.
	PatternPrefix = Prefix + "pattern-"
	// EnvPrefix + <name>: also expose the value as this environment
	// variable, through EnvFiles (fileKeyRef).
	EnvPrefix = Prefix + "env-"
	// FilePrefix + <name>: "false" delivers the secret only as its env var.
	FilePrefix = Prefix + "file-"
	// FormatPrefix + <name>: render a JSON object as one of plan.Formats.
	FormatPrefix = Prefix + "format-"
	// AllowKeysPrefix + <name>: a comma-separated list of keys that a
	// dotenv rendering refuses by default, because they change how a
	// process runs (render.ProcessKey), and that this file may hold. The
	// keys are compared exactly. It needs FormatPrefix + <name>: dotenv.
	// (Not "format-allow-keys-": one prefix of a key would then be the
	// start of another, and "format-allow-keys-db" could be either.)
	AllowKeysPrefix = Prefix + "allow-keys-"
)

// secretKeyPrefixes lists the per-secret prefixes other than SecretPrefix,
// in the order the parser reports them.
var secretKeyPrefixes = [...]string{KeyPrefix, VersionStagePrefix, VersionIDPrefix, ModePrefix, PatternPrefix,
	EnvPrefix, FilePrefix, FormatPrefix, AllowKeysPrefix}

// AllowedKeys is how the denial for an unknown key lists what is allowed.
const AllowedKeys = "inject, region, failover-region, batch, mount-path, containers, refresh-interval, refresh-notify, refresh-restart, refresh-restart-window, secret-<name>, key-<name>, " +
	"version-stage-<name>, version-id-<name>, mode-<name>, pattern-<name>, env-<name>, file-<name>, format-<name>, allow-keys-<name>"

// Names of what the mutation adds to a pod that the grammar checks against:
// a pod's own containers may not take them, nor be listed as readers.
const (
	// InitContainerName is the init container that runs init-fetch.
	InitContainerName = "secretfetch-init"
	// RefreshContainerName is the refresh sidecar: a native sidecar (an
	// init container with restartPolicy Always) right after the init
	// container, running init-fetch in refresh mode.
	RefreshContainerName = "secretfetch-refresh"
	// EnvMountPath is where the init container mounts the env file's
	// volume (plan.EnvDir), when a secret has an env-<name>.
	EnvMountPath = "/var/run/secretfetch-env"
)
