package mutate

import "github.com/secretfetch/secretfetch/internal/grammar"

// The annotation keys that make up the user's contract (docs: design.md, "The
// user's contract: annotations"). They are the grammar package's, which is
// the only code that reads them; these names keep the webhook's code short.
const (
	Prefix                         = grammar.Prefix
	AnnotationInject               = grammar.AnnotationInject
	AnnotationRegion               = grammar.AnnotationRegion
	AnnotationMountPath            = grammar.AnnotationMountPath
	AnnotationContainers           = grammar.AnnotationContainers
	AnnotationRefreshInterval      = grammar.AnnotationRefreshInterval
	AnnotationRefreshNotify        = grammar.AnnotationRefreshNotify
	AnnotationRefreshRestart       = grammar.AnnotationRefreshRestart
	AnnotationRefreshRestartWindow = grammar.AnnotationRefreshRestartWindow
	AnnotationStatus               = grammar.AnnotationStatus
	StatusInjected                 = grammar.StatusInjected

	SecretPrefix       = grammar.SecretPrefix
	KeyPrefix          = grammar.KeyPrefix
	VersionStagePrefix = grammar.VersionStagePrefix
	VersionIDPrefix    = grammar.VersionIDPrefix
	ModePrefix         = grammar.ModePrefix
	PatternPrefix      = grammar.PatternPrefix
	EnvPrefix          = grammar.EnvPrefix
	FilePrefix         = grammar.FilePrefix
	FormatPrefix       = grammar.FormatPrefix
	AllowKeysPrefix    = grammar.AllowKeysPrefix
)

// Names of what the webhook adds to a pod. They are reserved: a pod that
// already has them is treated as mutated before, and they are brought up to
// date in place.
const (
	// VolumeName is the memory-backed emptyDir that holds the files.
	VolumeName = "secretfetch-secrets"
	// InitContainerName is the init container that runs init-fetch.
	InitContainerName = grammar.InitContainerName
	// RefreshContainerName is the refresh sidecar: a native sidecar (an
	// init container with restartPolicy Always) right after the init
	// container, running init-fetch in refresh mode.
	RefreshContainerName = grammar.RefreshContainerName
	// InitCommand is the init-fetch binary in the init image.
	InitCommand = "/init-fetch"
	// EnvVolumeName is the memory-backed emptyDir that holds the env file
	// that the kubelet reads fileKeyRef values from. Only the init
	// container mounts it.
	EnvVolumeName = "secretfetch-env"
	// EnvMountPath is where the init container mounts it (plan.EnvDir).
	EnvMountPath = grammar.EnvMountPath
)
