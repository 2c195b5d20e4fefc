// Package webhook runs the secretfetch admission webhook process: an HTTPS
// server of its own serving mutate.Handler (see webhookServer for why not
// controller-runtime's), a health server, and a metrics server. It uses no
// manager and no Kubernetes client: the webhook makes no API calls.
package webhook

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/secretfetch/secretfetch/internal/mutate"
)

// Config is the webhook process's configuration; BindFlags fills it from
// the command line.
type Config struct {
	// CertDir holds tls.crt and tls.key. controller-runtime's certwatcher
	// reloads them when they change, so a renewed certificate needs no
	// restart.
	CertDir string
	// Host is the address the webhook server listens on ("" for all).
	Host string
	// Port is the webhook server's port.
	Port int
	// MetricsBindAddress and HealthProbeBindAddress are host:port; "0"
	// disables the server.
	MetricsBindAddress     string
	HealthProbeBindAddress string
	// ShutdownDelay is how long the webhook keeps serving after SIGTERM,
	// with readiness already failing, before it stops accepting
	// connections. The API server reaches the webhook through a Service, and
	// the endpoints take a moment to drop a terminating pod; a connection
	// refused in that moment would fail a pod creation (failurePolicy: Fail).
	ShutdownDelay time.Duration
	// MaxInFlight bounds the admission requests with a body over 64 KiB
	// served at once, and smaller ones to eight times as many; beyond it a
	// request is answered 429 at once (see guard).
	MaxInFlight int
	// BodyReadTimeout bounds the time a client may take to send a request's
	// body, from the end of its headers.
	BodyReadTimeout time.Duration
	// MaxConnections caps the open connections of the webhook server, idle
	// and handshaking ones included; past it the one idle longest is closed
	// (see connLimiter).
	MaxConnections int
	// evictAfter and queueWait tune the guard, and headerTimeout the
	// server (readHeaderTimeout); zero means the defaults. Tests shorten or
	// lengthen them.
	evictAfter, queueWait, headerTimeout time.Duration
	// RefreshRestart is --refresh-restart: auto (restart on change where
	// the API server reports 1.36 or later) or false.
	RefreshRestart string
	// serverVersion reads the API server's version at start-up and every
	// versionRecheck (zero: the default) after; nil means the kubeconfig's
	// API server (tests replace both).
	serverVersion  func(context.Context) (string, error)
	versionRecheck time.Duration
	// Mutate holds the settings of the init container.
	Mutate mutate.Config
}

// BindFlags registers the webhook's flags on fs, with their defaults.
func (c *Config) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.CertDir, "cert-dir", "",
		"directory with tls.crt and tls.key, reloaded when they change (default <TMPDIR>/k8s-webhook-server/serving-certs)")
	fs.StringVar(&c.Host, "host", "", `address the webhook server listens on; "" for all (a Pod's own IPs)`)
	fs.IntVar(&c.Port, "port", crwebhook.DefaultPort, "port of the webhook server (HTTPS)")
	fs.StringVar(&c.MetricsBindAddress, "metrics-bind-address", ":8080", `address of the Prometheus metrics server; "0" disables it`)
	fs.StringVar(&c.HealthProbeBindAddress, "health-probe-bind-address", ":8081", `address of the /healthz and /readyz server; "0" disables it`)
	fs.DurationVar(&c.ShutdownDelay, "shutdown-delay", 5*time.Second,
		"how long to keep serving after SIGTERM, with readiness failing, so that the Service stops sending requests first")
	fs.IntVar(&c.MaxInFlight, "max-in-flight", DefaultMaxInFlight,
		"admission requests with a body over 64 KiB served at once, and an eighth of the requests of up to 64 KiB; more are answered 429 with Retry-After")
	fs.DurationVar(&c.BodyReadTimeout, "body-read-timeout", DefaultBodyReadTimeout,
		"how long a client may take to send a request body; a slower one is cut off")
	fs.IntVar(&c.MaxConnections, "max-connections", DefaultMaxConnections,
		"open connections to the webhook server, idle ones included; past it the connection idle (or sending its headers) longest is closed")
	fs.StringVar(&c.Mutate.InitImage, "init-image", "", "image of the init-fetch init container (required)")
	fs.StringVar(&c.Mutate.DefaultRegion, "default-region", "",
		"AWS region for secrets given by name when a pod sets no secretfetch.io/region")
	fs.StringVar(&c.Mutate.DefaultFailoverRegion, "default-failover-region", "",
		"AWS region of the secrets' replicas, read when a pod's region cannot answer, for pods that set no secretfetch.io/failover-region")
	fs.StringVar(&c.Mutate.FailoverEndpoint, "failover-secretsmanager-endpoint", "",
		"Secrets Manager endpoint URL in the failover region, for init-fetch ("+mutate.EnvFailoverEndpoint+"); empty for the SDK's endpoint of that region")
	fs.StringVar(&c.Mutate.FailoverSTSEndpoint, "failover-sts-endpoint", "",
		"STS endpoint URL in the failover region, from which init-fetch gets IRSA credentials for it ("+mutate.EnvFailoverSTSEndpoint+"); empty for the SDK's endpoint of that region")
	fs.StringVar(&c.Mutate.SecretsManagerEndpoint, "secretsmanager-endpoint", "",
		"Secrets Manager endpoint URL for the init container (AWS_ENDPOINT_URL_SECRETS_MANAGER); empty for the SDK's default")
	fs.StringVar(&c.Mutate.STSEndpoint, "sts-endpoint", "",
		"STS endpoint URL for the init container (AWS_ENDPOINT_URL_STS); empty for the SDK's default")
	fs.BoolVar(&c.Mutate.AllowNodeCredentials, "allow-node-credentials", false,
		"let init-fetch fall back to the node's role through EC2 instance metadata when a pod has no IRSA or Pod Identity settings")
	fs.DurationVar(&c.Mutate.MinRefreshInterval, "min-refresh-interval", mutate.DefaultMinRefreshInterval,
		"the shortest secretfetch.io/refresh-interval a pod may ask for (at most 24h)")
	fs.Var(notFlag{&c.Mutate.NoEnvFiles}, "env-files",
		"allow secretfetch.io/env-<name> where the API server reports Kubernetes 1.35 or later (EnvFiles); false denies it everywhere")
	fs.Func("refresh-restart", "auto: allow secretfetch.io/refresh-restart where the API server reports Kubernetes 1.36 or later (RestartAllContainers); false: deny it everywhere",
		func(s string) error {
			if s != restartAuto && s != restartOff {
				return fmt.Errorf("%q is not auto or false", s)
			}
			c.RefreshRestart = s
			return nil
		})
	c.RefreshRestart = restartAuto
	fs.DurationVar(&c.Mutate.Restart.Window, "refresh-restart-window", mutate.DefaultRestartWindow,
		"the default secretfetch.io/refresh-restart-window: the restarts of one workload's pods are spread over it (0s: at once; at most 24h)")
	fs.DurationVar(&c.Mutate.Restart.Spacing, "refresh-restart-spacing", mutate.DefaultRestartSpacing,
		"the least time between two restarts of one pod for a new secret version (1m to 168h)")
	fs.Func("volume-size-limit", "sizeLimit of the secrets emptyDir, a quantity such as 4Mi (default: 2 x 64KiB per secret, at least 1Mi)",
		func(s string) error {
			if s == "" {
				c.Mutate.VolumeSizeLimit = nil
				return nil
			}
			q, err := resource.ParseQuantity(s)
			if err != nil {
				return fmt.Errorf("%q is not a quantity such as 4Mi: %w", s, err)
			}
			c.Mutate.VolumeSizeLimit = &q
			return nil
		})
	fs.Func("init-resources", `requests and limits of the injected init container, as JSON such as {"limits":{"cpu":"1","memory":"128Mi"}}; `+
		"each resource given replaces its default (requests cpu 10m, memory 16Mi; limits cpu 500m, memory 64Mi plus the volume)",
		func(s string) error {
			c.Mutate.InitResources = corev1.ResourceRequirements{}
			if s == "" {
				return nil
			}
			dec := json.NewDecoder(strings.NewReader(s))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&c.Mutate.InitResources); err != nil {
				return fmt.Errorf("%q is not a JSON object of requests and limits: %w", s, err)
			}
			return nil
		})
}

// DefaultMaxInFlight comes from the Deployment's 256 MiB memory limit. A
// request holds its body (at most 3.5 MiB, the Endpoint's cap), the buffer
// io.ReadAll grew it in (up to twice that while it grows), the decoded pod
// (about the body again) and the answer being encoded: about 5 x 3.5 MiB,
// say 18 MiB, at worst. Eight such requests hold about 144 MiB, which leaves
// room under GOMEMLIMIT (200 MiB) for the process's base heap (about 10 MiB)
// and the buffers of idle connections. A review from the API server is
// answered in well under a millisecond, so eight slots per replica serve
// thousands of pods a second. The 64 slots of bodies up to 64 KiB, where
// every ordinary review falls, hold at most 64 x 5 x 64 KiB = 20 MiB more.
const DefaultMaxInFlight = 8

// DefaultBodyReadTimeout is well above the time the API server takes to send
// a body (milliseconds) and not below the webhook's timeoutSeconds (5 s), so
// a request the API server still waits for is never cut off.
const DefaultBodyReadTimeout = 10 * time.Second

// Defaults of the guard's eviction and queueing (see guard).
const (
	defaultEvictAfter = 250 * time.Millisecond
	defaultQueueWait  = 250 * time.Millisecond
)

// http11Only makes the server offer HTTP/1.1 alone in ALPN. Over HTTP/2 one
// connection carries up to 250 streams, each a request with its own body, so
// a single client could hold many bodies past any per-connection bound.
// controller-runtime and kubebuilder advise the same for webhooks; the API
// server speaks HTTP/1.1 to them.
func http11Only(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }

// notFlag is a boolean flag that sets the negation of a bool, so that a
// setting whose zero value is "on" (mutate.Config.NoEnvFiles) can still be
// a flag that defaults to true.
type notFlag struct{ p *bool }

func (f notFlag) String() string {
	if f.p == nil {
		return "true"
	}
	return strconv.FormatBool(!*f.p)
}

func (f notFlag) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("%q is not true or false", s)
	}
	*f.p = !v
	return nil
}

func (f notFlag) IsBoolFlag() bool { return true }

// disabled is the bind address that turns a server off.
const disabled = "0"

// Run serves until ctx is cancelled, then shuts down gracefully: readiness
// fails at once, the webhook keeps serving for ShutdownDelay, then it stops
// accepting connections and finishes every request in flight. It returns
// nil after a clean shutdown, and an error if a server cannot start or
// fails. The logger comes from ctx (logf.IntoContext).
func Run(ctx context.Context, cfg Config) error {
	log := logf.FromContext(ctx).WithName("webhook")

	m, err := mutate.NewMetrics(metrics.Registry)
	if err != nil {
		return err
	}
	version := cfg.serverVersion
	if version == nil {
		version = serverVersion
	}
	base := cfg
	applyClusterFeatures(ctx, log, &cfg, version)
	h, err := mutate.NewHandler(cfg.Mutate, m)
	if err != nil {
		return err
	}
	// serveCtx ends when the webhook server stops accepting connections;
	// see Run's doc for the order of shutdown.
	serveCtx, stopServing := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServing()
	endpoint := &mutate.Endpoint{
		Webhook: &crwebhook.Admission{
			Handler: h,
			// The handler logs each decision with the request's identity.
			LogConstructor: func(base logr.Logger, _ *admission.Request) logr.Logger { return base },
		},
		Log:  log.WithName("admission"),
		Work: make(chan struct{}, maxDecoding()),
	}
	guarded, err := newGuard(endpoint, log.WithName("guard"), metrics.Registry, guardOptions{
		maxInFlight: cfg.MaxInFlight, readTimeout: cfg.BodyReadTimeout,
		evictAfter: orDefault(cfg.evictAfter, defaultEvictAfter), queueWait: orDefault(cfg.queueWait, defaultQueueWait),
	})
	if err != nil {
		return err
	}
	// controller-runtime's server is used for its mux alone: Register
	// counts and times the requests (controller_runtime_webhook_*). It is
	// never started.
	mux := http.NewServeMux()
	crwebhook.NewServer(crwebhook.Options{WebhookMux: mux}).Register(mutate.Path, guarded)
	closed, err := registerClosed(metrics.Registry)
	if err != nil {
		return err
	}
	srv, err := newWebhookServer(mux, serverOptions{
		addr: net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)), certDir: orDefaultDir(cfg.CertDir),
		maxConnections: cfg.MaxConnections, bodyTimeout: cfg.BodyReadTimeout, headerTimeout: orDefault(cfg.headerTimeout, readHeaderTimeout),
		// Requests are finished on shutdown, not refused: their context
		// ends only when their client goes away, as the API server does
		// when its timeout passes.
		base: logf.IntoContext(context.WithoutCancel(ctx), log), log: log.WithName("server"), closed: closed,
	})
	if err != nil {
		return err
	}

	var healthLn net.Listener
	if cfg.HealthProbeBindAddress != disabled {
		if healthLn, err = net.Listen("tcp", cfg.HealthProbeBindAddress); err != nil {
			_ = srv.ln.Close()
			return fmt.Errorf("listening for health probes: %w", err)
		}
	}
	// It serves controller-runtime's metrics.Registry, and so its webhook
	// request and latency metrics next to secretfetch's. No rest.Config:
	// it needs one only for authentication filters, which are not used.
	metricsSrv, err := metricsserver.NewServer(metricsserver.Options{BindAddress: cfg.MetricsBindAddress}, nil, nil)
	if err != nil {
		_ = srv.ln.Close()
		if healthLn != nil {
			_ = healthLn.Close()
		}
		return fmt.Errorf("creating the metrics server: %w", err)
	}

	// runCtx ends on shutdown or on the first server failure. The servers
	// run on contexts of their own, so that shutdown happens in order:
	// readiness, then the webhook server, then the rest.
	runCtx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	auxCtx, stopAux := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAux()
	var draining atomic.Bool

	var g errgroup.Group
	g.Go(func() error {
		// serve returns once every request in flight has been answered.
		err := srv.serve(serveCtx, log)
		stopAux()
		if err != nil {
			err = fmt.Errorf("serving webhooks on port %d: %w", cfg.Port, err)
			fail(err)
		}
		return err
	})
	if healthLn != nil {
		g.Go(func() error {
			err := serveHealth(auxCtx, healthLn, srv.ready, &draining)
			if err != nil {
				err = fmt.Errorf("serving health probes: %w", err)
				fail(err)
			}
			return err
		})
	}
	g.Go(func() error {
		watchCluster(auxCtx, log, base, cfg.Mutate, h, version, orDefault(cfg.versionRecheck, versionRecheck))
		return nil
	})
	if metricsSrv != nil {
		g.Go(func() error {
			err := metricsSrv.Start(logf.IntoContext(auxCtx, log))
			if err != nil {
				err = fmt.Errorf("serving metrics: %w", err)
				fail(err)
			}
			return err
		})
	}
	g.Go(func() error {
		<-runCtx.Done()
		draining.Store(true)
		if ctx.Err() != nil && cfg.ShutdownDelay > 0 {
			log.Info("shutting down: not ready any more; still serving while the Service drops this pod", "delay", cfg.ShutdownDelay)
			t := time.NewTimer(cfg.ShutdownDelay)
			select {
			case <-t.C:
			case <-serveCtx.Done():
			}
			t.Stop()
		}
		log.Info("stopping the webhook server; requests in flight are finished")
		stopServing()
		return nil
	})

	log.Info("starting", "port", cfg.Port, "certDir", cfg.CertDir, "initImage", cfg.Mutate.InitImage,
		"defaultRegion", cfg.Mutate.DefaultRegion, "secretsManagerEndpoint", cfg.Mutate.SecretsManagerEndpoint,
		"defaultFailoverRegion", cfg.Mutate.DefaultFailoverRegion, "failoverEndpoint", cfg.Mutate.FailoverEndpoint, "failoverSTSEndpoint", cfg.Mutate.FailoverSTSEndpoint,
		"stsEndpoint", cfg.Mutate.STSEndpoint, "maxInFlight", cfg.MaxInFlight, "bodyReadTimeout", cfg.BodyReadTimeout,
		"maxConnections", cfg.MaxConnections, "metrics", cfg.MetricsBindAddress, "health", cfg.HealthProbeBindAddress)
	err = g.Wait()
	if err == nil {
		log.Info("shut down")
	}
	return err
}

// maxDecoding bounds the reviews decoded and handled at once (see
// mutate.Endpoint.Work): as many as there are CPUs to decode them, and at
// most 4. The Deployment sets no CPU limit, so GOMAXPROCS is the node's
// CPUs, and each of the costliest reviews the bounds admit allocates up to
// about 16 MiB while it is decoded: 4 of them stay well under GOMEMLIMIT.
func maxDecoding() int { return min(runtime.GOMAXPROCS(0), 4) }

// orDefaultDir is dir, or controller-runtime's default certificate
// directory when it is empty.
func orDefaultDir(dir string) string {
	if dir == "" {
		return filepath.Join(os.TempDir(), "k8s-webhook-server", "serving-certs")
	}
	return dir
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// serveHealth serves /healthz (the process is up) and /readyz (the webhook
// server accepts connections and is not shutting down) until ctx ends.
func serveHealth(ctx context.Context, ln net.Listener, started healthz.Checker, draining *atomic.Bool) error {
	mux := http.NewServeMux()
	mux.Handle("/healthz", healthz.CheckHandler{Checker: healthz.Ping})
	mux.Handle("/readyz", healthz.CheckHandler{Checker: func(r *http.Request) error {
		if draining.Load() {
			return errors.New("shutting down")
		}
		return started(r)
	}})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
	err := hs.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		<-done
		return nil
	}
	return err
}
