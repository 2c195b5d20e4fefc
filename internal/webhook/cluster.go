package webhook

import (
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/discovery"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/client/config"

	"github.com/secretfetch/secretfetch/internal/features"
	"github.com/secretfetch/secretfetch/internal/mutate"
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
	cluster, err := readCluster(ctx, version)
	if err != nil {
		log.Error(err, "cannot tell which Kubernetes features the cluster has; secretfetch.io/refresh-restart is denied")
		cfg.Mutate.Restart.Enabled = false
		cfg.Mutate.Restart.Why = "the webhook could not read the API server's version at start-up (see its log)"
		return
	}
	setClusterFeatures(cfg, cluster)
	log.Info("cluster features", "version", cluster.GitVersion,
		"refreshRestart", cfg.Mutate.Restart.Enabled, "envFiles", !cfg.Mutate.NoEnvFiles)
}

func readCluster(ctx context.Context, version func(context.Context) (string, error)) (features.Cluster, error) {
	gitVersion, err := version(ctx)
	if err != nil {
		return features.Cluster{}, err
	}
	return features.Parse(gitVersion)
}

// setClusterFeatures sets, from the flags in cfg, what a cluster of that
// version allows.
func setClusterFeatures(cfg *Config, cluster features.Cluster) {
	switch {
	case cfg.RefreshRestart == restartOff:
		cfg.Mutate.Restart.Enabled = false
		cfg.Mutate.Restart.Why = "the webhook runs with --refresh-restart=false"
	case !cluster.Has(features.RestartAllContainers):
		cfg.Mutate.Restart.Enabled = false
		cfg.Mutate.Restart.Why = cluster.Why(features.RestartAllContainers)
	default:
		cfg.Mutate.Restart.Enabled, cfg.Mutate.Restart.Why = true, ""
	}
	if !cluster.Has(features.EnvFiles) {
		cfg.Mutate.NoEnvFiles = true
		cfg.Mutate.NoEnvFilesWhy = cluster.Why(features.EnvFiles)
	}
}

// versionRecheck is how often the webhook reads the API server's version
// again: a control plane is upgraded under a running webhook, and a feature
// it gains should not wait for the webhook's next rollout.
const versionRecheck = 10 * time.Minute

// watchCluster reads the API server's version every interval until ctx
// ends, and gives h the settings of base (the flags as given) for that
// version whenever they change. A version it cannot read keeps the current
// settings: a control plane that is briefly unreachable turns nothing off.
func watchCluster(ctx context.Context, log logr.Logger, base Config, current mutate.Config, h *mutate.Handler,
	version func(context.Context) (string, error), every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cluster, err := readCluster(ctx, version)
		if err != nil {
			log.Error(err, "reading the API server's version again; the cluster features stay as they are")
			continue
		}
		next := base
		setClusterFeatures(&next, cluster)
		if next.Mutate.Restart == current.Restart && next.Mutate.NoEnvFiles == current.NoEnvFiles && next.Mutate.NoEnvFilesWhy == current.NoEnvFilesWhy {
			continue
		}
		if err := h.SetConfig(next.Mutate); err != nil {
			log.Error(err, "applying the cluster features")
			continue
		}
		log.Info("cluster features changed", "version", cluster.GitVersion,
			"refreshRestart", next.Mutate.Restart.Enabled, "envFiles", !next.Mutate.NoEnvFiles)
		current = next.Mutate
	}
}
