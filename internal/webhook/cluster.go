package webhook

import (
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/discovery"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/client/config"

	"github.com/secretfetch/secretfetch/internal/features"
)

// Values of --refresh-restart.
const (
	restartAuto = "auto"
	restartOff  = "false"
)

// versionTimeout bounds the start-up's one request for the API server's
// version.
const versionTimeout = 10 * time.Second

// serverVersion asks the API server of the webhook's kubeconfig (in a pod:
// its service account) for its gitVersion. /version is readable by every
// client (system:public-info-viewer), so the webhook needs no RBAC for it.
func serverVersion(ctx context.Context) (string, error) {
	rc, err := ctrlconfig.GetConfig()
	if err != nil {
		return "", fmt.Errorf("finding the API server: %w", err)
	}
	rc.Timeout = versionTimeout
	dc, err := discovery.NewDiscoveryClientForConfig(rc)
	if err != nil {
		return "", fmt.Errorf("making a discovery client: %w", err)
	}
	info, err := dc.ServerVersion()
	if err != nil {
		return "", fmt.Errorf("reading the API server's version: %w", err)
	}
	return info.GitVersion, nil
}

// applyClusterFeatures turns the version-bound features on or off from what
// the API server reports: restart on change where --refresh-restart is auto
// and the cluster has RestartAllContainers, and EnvFiles off where the
// cluster lacks it (--env-files=false keeps it off everywhere). When the
// version cannot be read, restart on change stays off, saying why, and
// EnvFiles follows its flag.
func applyClusterFeatures(ctx context.Context, log logr.Logger, cfg *Config, version func(context.Context) (string, error)) {
	gitVersion, err := version(ctx)
	var cluster features.Cluster
	if err == nil {
		cluster, err = features.Parse(gitVersion)
	}
	if err != nil {
		log.Error(err, "cannot tell which Kubernetes features the cluster has; secretfetch.io/refresh-restart is denied")
		cfg.Mutate.Restart.Enabled = false
		cfg.Mutate.Restart.Why = "the webhook could not read the API server's version at start-up (see its log)"
		return
	}
	switch {
	case cfg.RefreshRestart == restartOff:
		cfg.Mutate.Restart.Enabled = false
		cfg.Mutate.Restart.Why = "the webhook runs with --refresh-restart=false"
	case !cluster.Has(features.RestartAllContainers):
		cfg.Mutate.Restart.Enabled = false
		cfg.Mutate.Restart.Why = cluster.Why(features.RestartAllContainers)
	default:
		cfg.Mutate.Restart.Enabled = true
	}
	if !cluster.Has(features.EnvFiles) && !cfg.Mutate.NoEnvFiles {
		cfg.Mutate.NoEnvFiles = true
	}
	log.Info("cluster features", "version", cluster.GitVersion,
		"refreshRestart", cfg.Mutate.Restart.Enabled, "envFiles", !cfg.Mutate.NoEnvFiles)
}
