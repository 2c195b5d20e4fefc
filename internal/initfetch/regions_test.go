package initfetch

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/cenkalti/backoff/v4"

	"github.com/secretfetch/secretfetch/internal/fetch"
	"github.com/secretfetch/secretfetch/internal/plan"
	"github.com/secretfetch/secretfetch/internal/smfake"
	"github.com/secretfetch/secretfetch/internal/smfake/smfaketest"
)

// withReplica gives h a second fake, in us-west-2, holding replicas of
// the secrets name with a value of its own, and the clients of both
// regions. It returns the replica's server, to stop the primary's.
func withReplica(t *testing.T, h *harness, primaryURL func() string, names ...string) *smfake.Server {
	t.Helper()
	replica := smfake.New(smfake.WithRegion("us-west-2"))
	srv := httptest.NewServer(replica)
	t.Cleanup(srv.Close)
	for _, n := range names {
		if _, _, err := replica.CreateSecret(n, smfake.Value{String: "replica-of-" + n + "-" + canary}); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.LoadDefaultConfig(context.Background(),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(smfake.DefaultAccessKeyID, smfake.DefaultSecretAccessKey, "")))
	if err != nil {
		t.Fatal(err)
	}
	clients := func(region string) (fetch.API, error) {
		url := primaryURL()
		if region == "us-west-2" {
			url = srv.URL
		}
		return fetch.SDKClients(cfg, func(o *secretsmanager.Options) { o.BaseEndpoint = aws.String(url) })(region)
	}
	h.opts = append(h.opts, WithClients(clients))
	return replica
}

func TestRunFailsOverAndCountsCalls(t *testing.T) {
	h := newHarness(t)
	h.secret(t, "app/db")
	down := httptest.NewServer(h.fk)
	down.Close() // a primary that refuses connections
	replica := withReplica(t, h, func() string { return down.URL }, "app/db")
	dir := t.TempDir()
	p := planJSON(t, &plan.Plan{Version: 1, Dir: dir, Region: "us-east-1", FailoverRegion: "us-west-2",
		Secrets: []plan.Secret{{File: "db", ID: "app/db"}}})
	err, lines := h.run(t, map[string]string{plan.EnvVar: p}, "--allow-non-tmpfs")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "db")); string(got) != "replica-of-app/db-"+canary {
		t.Errorf("db holds %d bytes, want the replica's value", len(got))
	}
	if replica.Count("GetSecretValue", "app/db") != 1 {
		t.Errorf("the replica was not asked once")
	}
	fo := withMsg(lines, "the primary region did not answer; reading the replica in the failover region")
	if len(fo) != 1 || fo[0]["from"] != "us-east-1" || fo[0]["to"] != "us-west-2" || fo[0]["code"] != fetch.CodeConnection {
		t.Errorf("failover lines: %v, want one from us-east-1 to us-west-2 for ConnectionError", fo)
	}
	fetched := withMsg(lines, "fetched secret")
	if len(fetched) != 1 || fetched[0]["region"] != "us-west-2" {
		t.Errorf("fetched lines: %v, want one naming us-west-2", fetched)
	}
	calls := withMsg(lines, CallsLogMessage)
	if len(calls) != 1 {
		t.Fatalf("%d %q lines, want 1", len(calls), CallsLogMessage)
	}
	want := map[string]float64{
		"GetSecretValue/us-east-1/" + fetch.CodeConnection: fetch.DefaultPrimaryAttempts,
		"GetSecretValue/us-west-2/OK":                      1,
	}
	got := map[string]float64{}
	for _, c := range calls[0]["calls"].([]any) {
		m := c.(map[string]any)
		got[m["api"].(string)+"/"+m["region"].(string)+"/"+m["result"].(string)] = m["count"].(float64)
	}
	if len(got) != len(want) {
		t.Errorf("calls: %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("calls %s: %v, want %v", k, got[k], n)
		}
	}
}

func TestFailoverEndpoint(t *testing.T) {
	env := map[string]string{plan.EnvFailoverEndpoint: "http://replica:4566"}
	p := &plan.Plan{Region: "us-east-1", FailoverRegion: "us-west-2"}
	for _, tc := range []struct {
		region, want string
		p            *plan.Plan
		env          map[string]string
	}{
		{"us-west-2", "http://replica:4566", p, env},
		{"us-east-1", "", p, env},
		{"us-west-2", "", &plan.Plan{Region: "us-east-1"}, env},
		{"us-west-2", "", p, nil},
	} {
		o := secretsmanager.Options{Region: tc.region}
		failoverEndpoint(func(k string) string { return tc.env[k] }, tc.p)(&o)
		if got := aws.ToString(o.BaseEndpoint); got != tc.want {
			t.Errorf("region %s, failover %q, env %v: endpoint %q, want %q", tc.region, tc.p.FailoverRegion, tc.env, got, tc.want)
		}
	}
}

// With IRSA, the failover region's clients get their credentials from STS
// in that region: a primary region whose Secrets Manager and STS are both
// down still lets the pod start from the replica.
func TestRunFailsOverWithoutPrimarySTS(t *testing.T) {
	smfaketest.IsolateEnv(t)
	primary := httptest.NewServer(smfake.New())
	primary.Close() // Secrets Manager and STS of us-east-1: down
	replica := smfake.New(smfake.WithRegion("us-west-2"))
	rsrv := httptest.NewServer(replica)
	t.Cleanup(rsrv.Close)
	if _, _, err := replica.CreateSecret("app/db", smfake.Value{String: "replica-" + canary}); err != nil {
		t.Fatal(err)
	}
	token, err := smfake.WebIdentityToken(map[string]any{"aud": []string{"sts.amazonaws.com"}, "sub": "system:serviceaccount:shop:checkout",
		"iss": "https://oidc.example", "exp": time.Now().Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ROLE_ARN", "arn:aws:iam::111122223333:role/checkout")
	t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", tokenFile)
	t.Setenv("AWS_ENDPOINT_URL_STS", primary.URL)
	t.Setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", primary.URL)
	t.Setenv("AWS_REGION", "us-east-1")

	dir := t.TempDir()
	p := planJSON(t, &plan.Plan{Version: 1, Dir: dir, Region: "us-east-1", FailoverRegion: "us-west-2",
		Secrets: []plan.Secret{{File: "db", ID: "app/db"}}})
	env := map[string]string{plan.EnvVar: p, plan.EnvFailoverEndpoint: rsrv.URL, plan.EnvFailoverSTSEndpoint: rsrv.URL}
	var stderr bytes.Buffer
	err = Run(context.Background(), []string{"--allow-non-tmpfs", "--termination-log", ""}, func(k string) string { return env[k] }, &stderr,
		WithBackOff(func() backoff.BackOff { return backoff.NewConstantBackOff(time.Millisecond) }))
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "db")); string(got) != "replica-"+canary {
		t.Errorf("db holds %d bytes, want the replica's value", len(got))
	}
	if roles := replica.AssumedRoles(); len(roles) != 1 {
		t.Errorf("the replica region's STS issued %d credentials, want 1", len(roles))
	}
	if !strings.Contains(stderr.String(), "reading the replica in the failover region") {
		t.Error("no failover line in the log")
	}
}
