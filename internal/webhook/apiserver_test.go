package webhook

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/secretfetch/secretfetch/hack/certs/pki"
)

// fakeAPIServer answers /version over TLS with gitVersion, to the bearer
// token in the file it returns, and records the tokens it was sent.
type fakeAPIServer struct {
	*httptest.Server
	mu     sync.Mutex
	tokens []string
}

func newFakeAPIServer(t *testing.T, status int, body string) (*fakeAPIServer, apiServer) {
	t.Helper()
	f := &fakeAPIServer{}
	f.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.tokens = append(f.tokens, r.Header.Get("Authorization"))
		f.mu.Unlock()
		if r.URL.Path != "/version" || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(f.Close)
	dir := t.TempDir()
	a := apiServer{url: f.URL, tokenFile: filepath.Join(dir, "token"), caFile: filepath.Join(dir, "ca.crt")}
	writeFile(t, a.tokenFile, "token-1\n")
	writeFile(t, a.caFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.Certificate().Raw})))
	return f, a
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (f *fakeAPIServer) sent() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.tokens...)
}

// TestAPIServerVersion: the webhook reads gitVersion as its service account,
// trusting only the cluster's CA bundle, and reads a rotated token on its
// next request.
func TestAPIServerVersion(t *testing.T) {
	f, a := newFakeAPIServer(t, http.StatusOK, `{"major":"1","minor":"37","gitVersion":"v1.37.1","platform":"linux/amd64"}`)
	got, err := a.version(context.Background())
	if err != nil {
		t.Fatalf("version: %v", err)
	}
	if got != "v1.37.1" {
		t.Errorf("version = %q, want v1.37.1", got)
	}
	writeFile(t, a.tokenFile, "token-2")
	if _, err := a.version(context.Background()); err != nil {
		t.Fatalf("version after the token rotated: %v", err)
	}
	if sent, want := f.sent(), []string{"Bearer token-1", "Bearer token-2"}; strings.Join(sent, ",") != strings.Join(want, ",") {
		t.Errorf("Authorization headers = %q, want %q", sent, want)
	}
}

// TestAPIServerVersionFailures: every way the one request can fail is an
// error that says what was being read; none is taken for a version.
func TestAPIServerVersionFailures(t *testing.T) {
	for _, tt := range []struct {
		name   string
		status int
		body   string
		edit   func(t *testing.T, a *apiServer)
		want   string
	}{
		{name: "forbidden", status: http.StatusForbidden, body: `{"kind":"Status"}`, want: "answered 403 Forbidden"},
		{name: "not JSON", status: http.StatusOK, body: `<html>`, want: "decoding its answer"},
		{name: "no gitVersion", status: http.StatusOK, body: `{"major":"1"}`, want: "has no gitVersion"},
		{name: "no token", status: http.StatusOK, body: `{"gitVersion":"v1.37.1"}`,
			edit: func(t *testing.T, a *apiServer) { a.tokenFile = filepath.Join(t.TempDir(), "absent") }, want: "reading the service account token"},
		{name: "CA bundle without a certificate", status: http.StatusOK, body: `{"gitVersion":"v1.37.1"}`,
			edit: func(t *testing.T, a *apiServer) { writeFile(t, a.caFile, "not PEM") }, want: "holds no PEM certificate"},
		{name: "a CA that did not sign the server's certificate", status: http.StatusOK, body: `{"gitVersion":"v1.37.1"}`,
			edit: func(t *testing.T, a *apiServer) {
				writeFile(t, a.caFile, otherCA(t))
			}, want: "certificate signed by unknown authority"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, a := newFakeAPIServer(t, tt.status, tt.body)
			if tt.edit != nil {
				tt.edit(t, &a)
			}
			got, err := a.version(context.Background())
			if err == nil {
				t.Fatalf("version = %q, want an error containing %q", got, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestInClusterAPIServer: the API server's address comes from the
// environment the kubelet sets, IPv6 included; outside a pod it is an error.
func TestInClusterAPIServer(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "fd00:10:96::1")
	t.Setenv("KUBERNETES_SERVICE_PORT", "443")
	a, err := inClusterAPIServer()
	if err != nil {
		t.Fatal(err)
	}
	if a.url != "https://[fd00:10:96::1]:443" || a.tokenFile != serviceAccountToken || a.caFile != serviceAccountCA {
		t.Errorf("inClusterAPIServer = %+v", a)
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	if _, err := inClusterAPIServer(); err == nil || !strings.Contains(err.Error(), "KUBERNETES_SERVICE_HOST") {
		t.Errorf("without KUBERNETES_SERVICE_HOST: error = %v, want one naming it", err)
	}
}

// otherCA is the PEM of a CA that signed nothing the fake serves.
func otherCA(t *testing.T) string {
	t.Helper()
	b, err := pki.New(pki.Options{DNSNames: []string{"localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b.CACert)
}
