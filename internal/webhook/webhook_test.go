package webhook

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	admissionv1 "k8s.io/api/admission/v1"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/secretfetch/secretfetch/internal/mutate"
	"github.com/secretfetch/secretfetch/internal/webhook/webhooktest"
)

func TestMain(m *testing.M) {
	logf.SetLogger(logr.FromSlogHandler(slog.NewJSONHandler(io.Discard, nil)))
	os.Exit(m.Run())
}

// server is one Run of the webhook on loopback.
type server struct {
	cfg    Config
	pool   *x509.CertPool
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returns
	err    error         // what Run returned, once done is closed
}

// wait returns what Run returned, failing the test if it does not return
// within 30s.
func (s *server) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-s.done:
		return s.err
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return 30s after cancel")
		return nil
	}
}

func (s *server) webhookURL() string {
	return fmt.Sprintf("https://127.0.0.1:%d%s", s.cfg.Port, mutate.Path)
}
func (s *server) healthURL(p string) string {
	return "http://" + s.cfg.HealthProbeBindAddress + p
}

func testConfig(t *testing.T) (Config, *x509.CertPool) {
	dir := t.TempDir()
	pool := webhooktest.WriteCert(t, dir)
	return Config{
		CertDir: dir, Host: "127.0.0.1", Port: webhooktest.FreePort(t),
		HealthProbeBindAddress: fmt.Sprintf("127.0.0.1:%d", webhooktest.FreePort(t)),
		MetricsBindAddress:     fmt.Sprintf("127.0.0.1:%d", webhooktest.FreePort(t)),
		MaxInFlight:            DefaultMaxInFlight, BodyReadTimeout: DefaultBodyReadTimeout, MaxConnections: DefaultMaxConnections,
		Mutate: mutate.Config{InitImage: "secretfetch.local/init-fetch:dev", DefaultRegion: "us-east-1"},
		// No API server here: the version a current cluster reports.
		RefreshRestart: restartAuto,
		serverVersion:  func(context.Context) (string, error) { return "v1.37.1", nil },
	}, pool
}

func start(t *testing.T, cfg Config, pool *x509.CertPool) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{cfg: cfg, pool: pool, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.err = Run(ctx, cfg)
	}()
	t.Cleanup(func() {
		cancel()
		<-s.done
	})
	s.waitReady(t)
	return s
}

// waitReady polls /readyz until it answers 200, or Run fails.
func (s *server) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			t.Fatalf("Run returned before it was ready: %v", s.err)
		default:
		}
		if code, _ := get(s.healthURL("/readyz")); code == http.StatusOK {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("never ready")
}

func get(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (s *server) client() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: s.pool, MinVersion: tls.VersionTLS12}}}
}

// review is an AdmissionReview for an opted-in pod with one secret.
func review(t *testing.T) []byte {
	t.Helper()
	pod := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"shop",
		"annotations":{"secretfetch.io/inject":"true","secretfetch.io/secret-db":"prod/db"}},
		"spec":{"securityContext":{"runAsUser":1000},"containers":[{"name":"app","image":"app","resources":{}}]},"status":{}}`
	ar := map[string]any{
		"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
		"request": map[string]any{
			"uid": "5b0c7d1e-2f3a-4b5c-8d9e-0f1a2b3c4d5e", "kind": map[string]string{"version": "v1", "kind": "Pod"},
			"resource": map[string]string{"version": "v1", "resource": "pods"}, "namespace": "shop",
			"operation": "CREATE", "userInfo": map[string]any{}, "object": json.RawMessage(pod),
		},
	}
	b, err := json.Marshal(ar)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkInjected asserts that an HTTP response carries an AdmissionReview
// that allows the pod with a JSON patch adding the init container.
func checkInjected(t *testing.T, status int, body []byte) {
	t.Helper()
	if status != http.StatusOK {
		t.Fatalf("HTTP %d: %s", status, body)
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &out); err != nil || out.Response == nil {
		t.Fatalf("not an AdmissionReview response (%v): %s", err, body)
	}
	r := out.Response
	if !r.Allowed || r.UID != "5b0c7d1e-2f3a-4b5c-8d9e-0f1a2b3c4d5e" || r.PatchType == nil ||
		!bytes.Contains(r.Patch, []byte(`"name":"secretfetch-init"`)) {
		t.Fatalf("response = allowed %v, uid %q, result %+v, patch %s; want the pod allowed with the init container added", r.Allowed, r.UID, r.Result, r.Patch)
	}
}

func (s *server) post(t *testing.T) (int, []byte) {
	t.Helper()
	resp, err := s.client().Post(s.webhookURL(), "application/json", bytes.NewReader(review(t)))
	if err != nil {
		t.Fatalf("POST %s: %v", s.webhookURL(), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// TestRun starts the webhook, checks its endpoints, and shuts it down.
func TestRun(t *testing.T) {
	cfg, pool := testConfig(t)
	s := start(t, cfg, pool)

	if code, body := get(s.healthURL("/healthz")); code != http.StatusOK {
		t.Errorf("/healthz = %d %s", code, body)
	}
	code, body := s.post(t)
	checkInjected(t, code, body)

	code, metricsText := get("http://" + cfg.MetricsBindAddress + "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d", code)
	}
	for _, want := range []string{
		`secretfetch_webhook_pods_total{reason="new",result="injected"}`,
		`secretfetch_webhook_pods_total{reason="annotations",result="denied"} 0`,
		`controller_runtime_webhook_requests_total{code="200",webhook="/mutate-v1-pod"}`,
		`controller_runtime_webhook_latency_seconds_bucket{webhook="/mutate-v1-pod"`,
		`secretfetch_webhook_refused_requests_total{reason="busy"}`,
		`secretfetch_webhook_refused_requests_total{reason="slow"}`,
	} {
		if !strings.Contains(metricsText, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	s.cancel()
	if err := s.wait(t); err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	if _, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", cfg.Port)); err == nil {
		t.Error("the webhook port still accepts connections after Run returned")
	}
}

// TestRunShutdownDelay: after cancel, readiness fails at once while the
// webhook still answers, for ShutdownDelay.
func TestRunShutdownDelay(t *testing.T) {
	cfg, pool := testConfig(t)
	cfg.ShutdownDelay = 3 * time.Second
	s := start(t, cfg, pool)
	s.cancel()
	// Run sees the cancel on its own goroutine: allow it a moment, far
	// below the delay.
	code := 0
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if code, _ = get(s.healthURL("/readyz")); code == http.StatusInternalServerError {
			break
		}
	}
	if code != http.StatusInternalServerError {
		t.Errorf("/readyz during shutdown = %d, want 500", code)
	}
	code, body := s.post(t)
	checkInjected(t, code, body)
	if err := s.wait(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// TestRunFinishesRequestsInFlight: a request whose body is still arriving
// when shutdown starts is answered in full.
func TestRunFinishesRequestsInFlight(t *testing.T) {
	cfg, pool := testConfig(t)
	s := start(t, cfg, pool)

	conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", cfg.Port), &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := review(t)
	half := len(body) / 2
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", mutate.Path, len(body))
	if _, err := conn.Write(body[:half]); err != nil {
		t.Fatal(err)
	}
	// Let the server read the headers, so that the request is in flight.
	time.Sleep(100 * time.Millisecond)

	s.cancel()
	// Wait until the webhook no longer accepts connections: shutdown is
	// under way, and only then send the rest of the body.
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", cfg.Port))
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the listener stayed open after cancel")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-s.done:
		t.Fatalf("Run returned (%v) with a request in flight", s.err)
	default:
	}
	if _, err := conn.Write(body[half:]); err != nil {
		t.Fatal(err)
	}
	readInjected(t, conn)
	if err := s.wait(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestRunFailsToStart(t *testing.T) {
	t.Run("no certificate", func(t *testing.T) {
		cfg, _ := testConfig(t)
		cfg.CertDir = t.TempDir()
		cfg.ShutdownDelay = time.Hour // a failure must not wait for it
		err := Run(context.Background(), cfg)
		if err == nil || !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("Run = %v, want an error about the missing certificate", err)
		}
	})
	t.Run("no init image", func(t *testing.T) {
		cfg, _ := testConfig(t)
		cfg.Mutate.InitImage = ""
		if err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "--init-image") {
			t.Fatalf("Run = %v, want an error naming --init-image", err)
		}
	})
	t.Run("no slots", func(t *testing.T) {
		cfg, _ := testConfig(t)
		cfg.MaxInFlight = 0
		if err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "--max-in-flight") {
			t.Fatalf("Run = %v, want an error naming --max-in-flight", err)
		}
	})
	t.Run("no connections", func(t *testing.T) {
		cfg, _ := testConfig(t)
		cfg.MaxConnections = 0
		if err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "--max-connections") {
			t.Fatalf("Run = %v, want an error naming --max-connections", err)
		}
	})
	t.Run("webhook port taken", func(t *testing.T) {
		cfg, _ := testConfig(t)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", cfg.Port))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "listening for webhooks") {
			t.Fatalf("Run = %v, want an error about the webhook port", err)
		}
	})
	t.Run("no read timeout", func(t *testing.T) {
		cfg, _ := testConfig(t)
		cfg.BodyReadTimeout = 0
		if err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "--body-read-timeout") {
			t.Fatalf("Run = %v, want an error naming --body-read-timeout", err)
		}
	})
	t.Run("health port taken", func(t *testing.T) {
		cfg, _ := testConfig(t)
		l, err := net.Listen("tcp", cfg.HealthProbeBindAddress)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if err := Run(context.Background(), cfg); err == nil {
			t.Fatal("Run succeeded with its health port taken")
		}
	})
}

func TestBindFlags(t *testing.T) {
	fs := flagSet()
	var cfg Config
	cfg.BindFlags(fs)
	err := fs.Parse([]string{"--cert-dir=/certs", "--port=10443", "--init-image=img", "--default-region=eu-west-1",
		"--secretsmanager-endpoint=https://sm.example", "--sts-endpoint=https://sts.example", "--volume-size-limit=4Mi",
		"--metrics-bind-address=0", "--health-probe-bind-address=:9000", "--shutdown-delay=2s", "--host=127.0.0.1",
		"--allow-node-credentials", "--max-in-flight=3", "--body-read-timeout=4s", "--env-files=false", "--max-connections=9",
		`--init-resources={"limits":{"cpu":"1","memory":"256Mi"}}`})
	if err != nil {
		t.Fatal(err)
	}
	if lim := cfg.Mutate.InitResources.Limits; lim.Cpu().String() != "1" || lim.Memory().String() != "256Mi" || len(cfg.Mutate.InitResources.Requests) != 0 {
		t.Errorf("--init-resources gave %+v", cfg.Mutate.InitResources)
	}
	if !cfg.Mutate.NoEnvFiles {
		t.Error("--env-files=false left EnvFiles on")
	}
	if cfg.CertDir != "/certs" || cfg.Port != 10443 || cfg.Mutate.InitImage != "img" || cfg.Mutate.DefaultRegion != "eu-west-1" ||
		cfg.Mutate.SecretsManagerEndpoint != "https://sm.example" || cfg.Mutate.STSEndpoint != "https://sts.example" ||
		cfg.Mutate.VolumeSizeLimit == nil || cfg.Mutate.VolumeSizeLimit.String() != "4Mi" ||
		cfg.MetricsBindAddress != "0" || cfg.HealthProbeBindAddress != ":9000" || cfg.ShutdownDelay != 2*time.Second ||
		cfg.Host != "127.0.0.1" || !cfg.Mutate.AllowNodeCredentials || cfg.MaxInFlight != 3 || cfg.BodyReadTimeout != 4*time.Second ||
		cfg.MaxConnections != 9 {
		t.Errorf("config = %+v", cfg)
	}

	// Empty values, as the manifests pass for unset settings, mean unset.
	fs = flagSet()
	cfg = Config{}
	cfg.BindFlags(fs)
	if err := fs.Parse([]string{"--volume-size-limit=", "--default-region=", "--sts-endpoint=", "--init-resources="}); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Mutate.InitResources.Limits)+len(cfg.Mutate.InitResources.Requests) != 0 {
		t.Errorf("--init-resources= gave %+v, want the defaults", cfg.Mutate.InitResources)
	}
	for _, bad := range []string{`{"limit":{"cpu":"1"}}`, `{"limits":{"cpu":"lots"}}`, `cpu=1`} {
		fs = flagSet()
		cfg.BindFlags(fs)
		if err := fs.Parse([]string{"--init-resources=" + bad}); err == nil {
			t.Errorf("--init-resources=%s was accepted", bad)
		}
	}
	fs = flagSet()
	cfg = Config{}
	cfg.BindFlags(fs)
	if err := fs.Parse([]string{"--volume-size-limit=", "--default-region=", "--sts-endpoint="}); err != nil {
		t.Fatal(err)
	}
	if cfg.Mutate.VolumeSizeLimit != nil || cfg.Port != 9443 || cfg.MetricsBindAddress != ":8080" || cfg.HealthProbeBindAddress != ":8081" ||
		cfg.MaxInFlight != 8 || cfg.BodyReadTimeout != 10*time.Second || cfg.MaxConnections != 256 || cfg.Mutate.NoEnvFiles {
		t.Errorf("defaults = %+v", cfg)
	}
	for _, args := range [][]string{{"--env-files"}, {"--env-files=true"}, {"--env-files=false", "--env-files=1"}} {
		fs = flagSet()
		cfg = Config{}
		cfg.BindFlags(fs)
		if err := fs.Parse(args); err != nil || cfg.Mutate.NoEnvFiles {
			t.Errorf("%q: %v, NoEnvFiles=%v; want EnvFiles on", args, err, cfg.Mutate.NoEnvFiles)
		}
	}
	fs = flagSet()
	cfg.BindFlags(fs)
	if err := fs.Parse([]string{"--env-files=maybe"}); err == nil {
		t.Error("--env-files=maybe was accepted")
	}

	fs = flagSet()
	cfg.BindFlags(fs)
	if err := fs.Parse([]string{"--volume-size-limit=lots"}); err == nil {
		t.Error("--volume-size-limit=lots was accepted")
	}
}

func flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// TestRunReloadsCertificate: a renewed certificate written into --cert-dir
// (as cert-manager or the kubelet's Secret update does) is served without a
// restart, through controller-runtime's certwatcher.
func TestRunReloadsCertificate(t *testing.T) {
	cfg, oldPool := testConfig(t)
	s := start(t, cfg, oldPool)
	addr := fmt.Sprintf("127.0.0.1:%d", cfg.Port)
	served := func(pool *x509.CertPool) error {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
		if err != nil {
			return err
		}
		return conn.Close()
	}
	if err := served(oldPool); err != nil {
		t.Fatalf("the first certificate is not served: %v", err)
	}

	newPool := webhooktest.WriteCert(t, cfg.CertDir) // a new key and certificate in place
	deadline := time.Now().Add(30 * time.Second)
	for served(newPool) != nil {
		if time.Now().After(deadline) {
			t.Fatal("the renewed certificate was not served within 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := served(oldPool); err == nil {
		t.Error("the old certificate is still served after the renewal")
	}
	// Admission keeps working over the renewed certificate.
	s.pool = newPool
	code, body := s.post(t)
	checkInjected(t, code, body)
}

// readInjected reads one answer on conn and checks that it injected the
// pod.
func readInjected(t *testing.T, conn net.Conn) {
	t.Helper()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	checkInjected(t, resp.StatusCode, b)
}
