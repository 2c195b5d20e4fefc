package webhook

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/version"

	"github.com/secretfetch/secretfetch/internal/features"
	"github.com/secretfetch/secretfetch/internal/mutate"
)

// Values of --refresh-restart.
const (
	restartAuto = "auto"
	restartOff  = "false"
)

// versionTimeout bounds each request for the API server's version.
const versionTimeout = 10 * time.Second

// maxVersionBody bounds what the webhook reads of /version's answer, a JSON
// object of a few hundred bytes.
const maxVersionBody = 64 << 10

// Where the kubelet mounts the pod's service account token and the
// cluster's CA bundle.
const (
	serviceAccountToken = "/var/run/secrets/kubernetes.io/serviceaccount/token"
	serviceAccountCA    = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
)

// apiServer is the one API server request the webhook makes: GET /version,
// as the pod's service account. /version is readable by every client
// (system:public-info-viewer), so the webhook needs no RBAC for it.
//
// It is net/http and not client-go's rest client on purpose: that client
// and its discovery and kubeconfig packages made the webhook's binary
// 1.9 MB larger, and its resident memory 1.1 MB larger at rest and about
// 1.5 MB under load, for this one GET (docs/benchmarks.md, "The binary's
// pages").
type apiServer struct {
	url       string // https://host:port
	tokenFile string
	caFile    string
}

// inClusterAPIServer finds the API server as client-go's rest.InClusterConfig
// does: from the environment the kubelet gives every pod.
func inClusterAPIServer() (apiServer, error) {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return apiServer{}, errors.New("not running in a Kubernetes pod: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are unset")
	}
	return apiServer{url: "https://" + net.JoinHostPort(host, port), tokenFile: serviceAccountToken, caFile: serviceAccountCA}, nil
}

// serverVersion asks the API server of the webhook's pod for its gitVersion.
func serverVersion(ctx context.Context) (string, error) {
	a, err := inClusterAPIServer()
	if err != nil {
		return "", fmt.Errorf("finding the API server: %w", err)
	}
	return a.version(ctx)
}

// version reads the token and the CA bundle again on every call: the
// kubelet rotates a projected token within the hour, and the webhook asks
// every versionRecheck.
func (a apiServer) version(ctx context.Context) (string, error) {
	token, err := os.ReadFile(a.tokenFile)
	if err != nil {
		return "", fmt.Errorf("reading the service account token: %w", err)
	}
	caPEM, err := os.ReadFile(a.caFile)
	if err != nil {
		return "", fmt.Errorf("reading the cluster's CA bundle: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return "", fmt.Errorf("reading the cluster's CA bundle: %s holds no PEM certificate", a.caFile)
	}
	client := &http.Client{
		Timeout: versionTimeout,
		// One request every versionRecheck: no connection is kept, and
		// no proxy is asked, since the API server is the cluster's own.
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
			DisableKeepAlives: true,
		},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.url+"/version", nil)
	if err != nil {
		return "", fmt.Errorf("reading the API server's version: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("reading the API server's version: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxVersionBody))
	if err != nil {
		return "", fmt.Errorf("reading the API server's version: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("reading the API server's version: GET %s/version answered %s", a.url, resp.Status)
	}
	var info version.Info
	if err := json.Unmarshal(body, &info); err != nil {
		return "", fmt.Errorf("reading the API server's version: decoding its answer: %w", err)
	}
	if info.GitVersion == "" {
		return "", errors.New("reading the API server's version: its answer has no gitVersion")
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
