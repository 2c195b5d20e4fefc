package initfetch

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secretfetch/secretfetch/internal/fetch"
	"github.com/secretfetch/secretfetch/internal/plan"
	"github.com/secretfetch/secretfetch/internal/smfake"
)

func TestRefreshFlags(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	base := []string{"--dir", dir, "--secret", "a=app/a", "--region", "us-east-1", "--allow-non-tmpfs"}
	for args, want := range map[string]string{
		"--refresh-notify=http://127.0.0.1:8080/r":                             "--refresh-notify needs --refresh-interval",
		"--refresh-interval=500ms":                                             "--refresh-interval: 500ms is outside the allowed range",
		"--refresh-interval=25h":                                               "--refresh-interval: 25h0m0s is outside the allowed range",
		"--refresh-interval=1m --refresh-notify=http://10.0.0.1:80/":           "--refresh-notify: \"http://10.0.0.1:80/\": the host must be a loopback address",
		"--refresh-interval=1m --refresh-notify=https://127.0.0.1:8443/reload": "--refresh-notify: \"https://127.0.0.1:8443/reload\": the scheme must be http",
		// Restart on change.
		"--refresh-restart": "--refresh-restart needs --refresh-interval",
		"--refresh-interval=1m --refresh-restart-window=5m":                            "--refresh-restart-window needs --refresh-restart",
		"--refresh-interval=1m --refresh-restart-spacing=20m":                          "--refresh-restart-spacing needs --refresh-restart",
		"--refresh-interval=1m --refresh-restart --refresh-restart-window=25h":         "--refresh-restart-window: 25h0m0s is outside the allowed range",
		"--refresh-interval=1m --refresh-restart --refresh-restart-window=-1s":         "--refresh-restart-window: -1s is outside the allowed range",
		"--refresh-interval=1m --refresh-restart --refresh-restart-spacing=30s":        "--refresh-restart-spacing: 30s is outside the allowed range",
		"--refresh-interval=1m --refresh-restart --refresh-restart-spacing=169h":       "--refresh-restart-spacing: 169h0m0s is outside the allowed range",
		"--refresh-interval=1m --refresh-restart --refresh-restart-window=ten-minutes": "invalid value",
	} {
		err, _ := h.run(t, nil, append(base, strings.Fields(args)...)...)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: Run = %v, want %q", args, err, want)
		}
		if code := ExitCode(err); code != 1 {
			t.Errorf("%s: exit code %d, want 1", args, code)
		}
	}
}

// TestRefreshMode runs init-fetch, then init-fetch in refresh mode over its
// files, and waits for the swap after a PutSecretValue.
func TestRefreshMode(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	h.secret(t, "app/a")
	args := []string{"--dir", dir, "--secret", "a=app/a", "--region", "us-east-1", "--allow-non-tmpfs"}
	if err, _ := h.run(t, nil, args...); err != nil {
		t.Fatal(err)
	}
	if _, err := h.fk.PutSecretValue("app/a", smfake.Value{String: "new-" + canary}); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var stderr bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, append(args, "--refresh-interval=1s"), func(string) string { return "" }, &stderr, h.opts...)
	}()
	// Wait for the swap (about a second), bounded so that a broken loop
	// fails instead of hanging.
	deadline := time.After(30 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(dir, "a"))
		if string(b) == "new-"+canary {
			break
		}
		select {
		case <-deadline:
			cancel()
			t.Fatal("the refresh sidecar did not swap in the new value")
		case <-time.After(50 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run in refresh mode returned %v after its context ended, want nil", err)
	}
	log := stderr.String()
	if strings.Contains(log, canary) {
		t.Error("the refresh log shows a secret value")
	}
	for _, want := range []string{`"msg":"refreshing secrets"`, `"msg":"swapped secrets"`} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %s", want)
		}
	}
	if n := h.fk.Count("DescribeSecret", "app/a"); n < 1 {
		t.Errorf("%d DescribeSecret calls, want at least one", n)
	}
}

// TestAttribution: with the downward-API variables set, every call carries
// the pod in the user agent, and with IRSA in the role session name.
func TestAttribution(t *testing.T) {
	h := newHarness(t)
	h.secret(t, "app/a")
	srv := httptest.NewServer(h.fk)
	t.Cleanup(srv.Close)
	token := filepath.Join(t.TempDir(), "token")
	jwt, err := smfake.WebIdentityToken(map[string]any{
		"aud": []string{"sts.amazonaws.com"}, "sub": "system:serviceaccount:team-a:web",
		"iss": "https://oidc.example", "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(token, []byte(jwt), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ROLE_ARN", "arn:aws:iam::111122223333:role/web")
	t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", token)
	t.Setenv("AWS_ENDPOINT_URL_STS", srv.URL)
	t.Setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", srv.URL)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")

	// No WithClients: the SDK's own configuration, as in a pod.
	opts := []Option{h.opts[1], h.opts[2]}
	env := map[string]string{plan.EnvPodNamespace: "team-a", plan.EnvPodName: "web-7d9f-x2k"}
	dir := t.TempDir()
	var stderr bytes.Buffer
	err = Run(context.Background(), []string{"--dir", dir, "--secret", "a=app/a", "--allow-non-tmpfs"},
		func(k string) string { return env[k] }, &stderr, opts...)
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, stderr.String())
	}
	var got bool
	for _, r := range h.fk.Requests() {
		if r.Operation == "GetSecretValue" {
			got = true
			if !strings.Contains(r.UserAgent, "app/team-a.web-7d9f-x2k") {
				t.Errorf("GetSecretValue user agent %q does not name the pod", r.UserAgent)
			}
		}
	}
	if !got {
		t.Fatal("no GetSecretValue in the fake's log")
	}
	roles := h.fk.AssumedRoles()
	if len(roles) != 1 || roles[0].SessionName != "team-a.web-7d9f-x2k" {
		t.Errorf("assumed roles %+v, want one with the session name team-a.web-7d9f-x2k", roles)
	}
}

func TestRoleSessionName(t *testing.T) {
	long := strings.Repeat("n", 253)
	for _, c := range []struct{ ns, name, want string }{
		{"team-a", "web-1", "team-a.web-1"},
		{"a", "b", "a.b"},
		{"ns", "pod:with/odd", "ns.pod-with-odd"},
	} {
		if got := RoleSessionName(c.ns, c.name); got != c.want {
			t.Errorf("RoleSessionName(%q, %q) = %q, want %q", c.ns, c.name, got, c.want)
		}
	}
	a, b := RoleSessionName("ns", long), RoleSessionName("ns", long+"x")
	if len(a) != 64 || len(b) != 64 || a == b || !strings.HasPrefix(a, "ns.nnn") {
		t.Errorf("long names: %q and %q, want 64 characters each, distinct, starting with the namespace", a, b)
	}
	if got := AppID("ns", long); got != "ns."+long {
		t.Errorf("AppID = %q", got)
	}
}

// TestCredentialAnswersCapped: init-fetch loads the SDK's configuration
// itself (to name the pod), and the STS answer that IRSA reads is capped
// there too, as fetch.LoadConfig caps it, in both modes. A hostile or
// broken endpoint once had its whole answer read.
func TestCredentialAnswersCapped(t *testing.T) {
	h := newHarness(t)
	h.secret(t, "app/a")
	sts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>")
		chunk := []byte(strings.Repeat("x", 4096))
		for range (8 << 20) / len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	t.Cleanup(sts.Close)
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("header.payload.signature"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ROLE_ARN", "arn:aws:iam::111122223333:role/web")
	t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", token)
	t.Setenv("AWS_ENDPOINT_URL_STS", sts.URL)
	t.Setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", "http://127.0.0.1:1")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")

	opts := []Option{h.opts[1], h.opts[2]} // no WithClients: the SDK's own configuration
	for _, env := range []map[string]string{nil, {plan.EnvPodNamespace: "team-a", plan.EnvPodName: "web"}} {
		var stderr bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := Run(ctx, []string{"--dir", t.TempDir(), "--secret", "a=app/a", "--allow-non-tmpfs", "--timeout=5s"},
			func(k string) string { return env[k] }, &stderr, opts...)
		cancel()
		if !errors.Is(err, fetch.ErrResponseTooLarge) {
			t.Errorf("pod named %v: Run = %.300v, want %v", env != nil, err, fetch.ErrResponseTooLarge)
		}
	}
}
