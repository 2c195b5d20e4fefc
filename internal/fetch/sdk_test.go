package fetch

// These tests drive the real SDK client over loopback against smfake, the
// project's fake of Secrets Manager, which verifies SigV4 and answers with
// AWS's error shapes.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/secretfetch/secretfetch/internal/plan"
	"github.com/secretfetch/secretfetch/internal/smfake"
	"github.com/secretfetch/secretfetch/internal/smfake/smfaketest"
)

const opGet = "GetSecretValue"

// fake starts smfake on loopback and returns it with Options whose clients
// talk to it with the fake's static credentials. No environment is read
// except what LoadDefaultConfig reads anyway; smfaketest.IsolateEnv blanks that.
func fake(t testing.TB, opts ...smfake.Option) (*smfake.Server, Options) {
	t.Helper()
	fk, url := fakeServer(t, opts...)
	return fk, Options{Clients: fakeClients(t, url, fk.Region()), NewBackOff: fastBackOff}
}

// fakeServer starts smfake on loopback, with the environment isolated, and
// returns it with its URL, for tests that let the SDK's own configuration
// find it.
func fakeServer(t testing.TB, opts ...smfake.Option) (*smfake.Server, string) {
	t.Helper()
	smfaketest.IsolateEnv(t)
	fk := smfake.New(opts...)
	srv := httptest.NewServer(fk)
	t.Cleanup(srv.Close)
	return fk, srv.URL
}

func fakeClients(t testing.TB, url, region string) ClientFunc {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background(),
		config.WithRegion(region),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(smfake.DefaultAccessKeyID, smfake.DefaultSecretAccessKey, "")),
	)
	if err != nil {
		t.Fatal(err)
	}
	return SDKClients(cfg, func(o *secretsmanager.Options) { o.BaseEndpoint = aws.String(url) })
}

func create(t testing.TB, fk *smfake.Server, name string, v smfake.Value) (arn, version string) {
	t.Helper()
	arn, version, err := fk.CreateSecret(name, v)
	if err != nil {
		t.Fatalf("CreateSecret(%s): %v", name, err)
	}
	return arn, version
}

func TestSDKRetriesAgainstFake(t *testing.T) {
	tests := []struct {
		code      string
		status    int
		retryable bool
	}{
		{code: "ThrottlingException", retryable: true},
		{code: "TooManyRequestsException", status: 429, retryable: true},
		{code: "InternalServiceError", retryable: true},
		{code: "ServiceUnavailable", status: 503, retryable: true},
		{code: "BadGateway", status: 502, retryable: true},
		{code: "AccessDeniedException"},
		{code: "ResourceNotFoundException"},
		{code: "DecryptionFailure"},
		{code: "InvalidRequestException"},
		{code: "InvalidParameterException"},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			fk, o := fake(t)
			create(t, fk, "app/db", smfake.Value{String: "s3cret"})
			// Two failures, then the secret: a retried code takes three
			// requests and succeeds, a permanent one stops at the first.
			fk.InjectFault(smfake.Fault{Operation: opGet, SecretID: "app/db", Code: tt.code, Status: tt.status, Count: 2})
			res, err := Fetch(context.Background(), onePlan(plan.Secret{File: "db", ID: "app/db"}), o)
			requests := fk.Count(opGet, "app/db")
			if tt.retryable {
				if err != nil {
					t.Fatalf("Fetch: %v", err)
				}
				if res[0].Attempts != 3 || requests != 3 {
					t.Errorf("attempts = %d, requests = %d; want 3 and 3", res[0].Attempts, requests)
				}
				if !bytes.Equal(res[0].Value, []byte("s3cret")) {
					t.Errorf("value = %s", digest(res[0].Value))
				}
				return
			}
			var se *SecretError
			if !errors.As(err, &se) {
				t.Fatalf("Fetch error = %v, want a *SecretError", err)
			}
			if se.Code != tt.code || se.Attempts != 1 || requests != 1 {
				t.Errorf("code %s after %d attempts and %d requests; want %s after 1 and 1", se.Code, se.Attempts, requests, tt.code)
			}
		})
	}
}

func TestSDKThrottledTwiceThenSuccess(t *testing.T) {
	fk, o := fake(t)
	_, version := create(t, fk, "app/db", smfake.Value{String: "s3cret"})
	fk.InjectFault(smfake.Fault{Operation: opGet, SecretID: "app/db", Code: "ThrottlingException", Count: 2})
	var retries []string
	o.OnRetry = func(r Retry) {
		retries = append(retries, fmt.Sprintf("%s%v#%d:%s", r.ID, r.Files, r.Attempt, r.Code))
	}
	res, err := Fetch(context.Background(), onePlan(plan.Secret{File: "db", ID: "app/db"}), o)
	if err != nil {
		t.Fatal(err)
	}
	if want := "[app/db[db]#1:ThrottlingException app/db[db]#2:ThrottlingException]"; fmt.Sprint(retries) != want {
		t.Errorf("retries = %v, want %s", retries, want)
	}
	var codes []string
	for _, r := range fk.Requests() {
		codes = append(codes, r.Code)
	}
	if fmt.Sprint(codes) != "[ThrottlingException ThrottlingException ]" {
		t.Errorf("request log codes = %q", codes)
	}
	if res[0].VersionID != version || res[0].Attempts != 3 {
		t.Errorf("result version %s after %d attempts, want %s after 3", res[0].VersionID, res[0].Attempts, version)
	}
}

func TestSDKDeadlineRunsOut(t *testing.T) {
	fk, o := fake(t)
	create(t, fk, "app/db", smfake.Value{String: "s3cret"})
	fk.InjectFault(smfake.Fault{Operation: opGet, SecretID: "app/db", Code: "ThrottlingException"})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := Fetch(ctx, onePlan(plan.Secret{File: "db", ID: "app/db"}), o)
	var se *SecretError
	if !errors.As(err, &se) {
		t.Fatalf("Fetch error = %v, want a *SecretError", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) || se.Code != "ThrottlingException" {
		t.Errorf("error %v: want DeadlineExceeded with code ThrottlingException", err)
	}
	// Hidden SDK retries would show as more requests than attempts. One
	// fewer is fine: the deadline can cancel the last attempt before the
	// fake has logged it.
	if n := fk.Count(opGet, "app/db"); se.Attempts < 2 || n > se.Attempts || n < se.Attempts-1 {
		t.Errorf("attempts = %d, requests = %d; want several, and one request per attempt (no hidden SDK retries)", se.Attempts, n)
	}
}

func TestSDKAttemptTimeoutRetried(t *testing.T) {
	fk, o := fake(t)
	create(t, fk, "app/db", smfake.Value{String: "s3cret"})
	fk.InjectFault(smfake.Fault{Operation: opGet, SecretID: "app/db", Latency: 2 * time.Second, Count: 1})
	o.AttemptTimeout = 100 * time.Millisecond
	res, err := Fetch(context.Background(), onePlan(plan.Secret{File: "db", ID: "app/db"}), o)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Attempts != 2 {
		t.Errorf("attempts = %d, want 2 (a timed-out attempt, then success)", res[0].Attempts)
	}
}

func TestSDKConnectionErrorRetried(t *testing.T) {
	smfaketest.IsolateEnv(t)
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	o := Options{Clients: fakeClients(t, url, "us-east-1"), NewBackOff: fastBackOff}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := Fetch(ctx, onePlan(plan.Secret{File: "db", ID: "app/db"}), o)
	var se *SecretError
	if !errors.As(err, &se) || se.Code != CodeConnection || se.Attempts < 2 {
		t.Fatalf("error = %v; want %s after several attempts", err, CodeConnection)
	}
}

func TestSDKValues(t *testing.T) {
	fk, o := fake(t, smfake.WithRegion("eu-west-1"))
	doc := `{"db":{"user":"admin","password":"pa55word","port":5432,"tls":{"verify":true, "ca":"x"}}}`
	binary := []byte{0x00, 0x9f, 0x92, 0x96, 0xff, '\n'}
	arn, _ := create(t, fk, "app/json", smfake.Value{String: doc})
	create(t, fk, "app/bin", smfake.Value{Binary: binary})
	_, v1 := create(t, fk, "app/rotated", smfake.Value{String: "first"})
	v2, err := fk.PutSecretValue("app/rotated", smfake.Value{String: "second"})
	if err != nil {
		t.Fatal(err)
	}
	partialARN := strings.TrimSuffix(arn, arn[len(arn)-7:]) // without "-XXXXXX"
	p := &plan.Plan{Version: 1, Dir: "/d", Region: "eu-west-1", Secrets: []plan.Secret{
		{File: "password", ID: "app/json", Key: "db.password"},
		{File: "port", ID: arn, Key: "db.port"},
		{File: "tls", ID: partialARN, Key: "db.tls"},
		{File: "bin", ID: "app/bin"},
		{File: "current", ID: "app/rotated"},
		{File: "previous", ID: "app/rotated", VersionStage: "AWSPREVIOUS"},
		{File: "by-id", ID: "app/rotated", VersionID: v1},
	}}
	res, err := Fetch(context.Background(), p, o)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		value   []byte
		version string
	}{
		{[]byte("pa55word"), ""}, {[]byte("5432"), ""}, {[]byte(`{"verify":true,"ca":"x"}`), ""},
		{binary, ""}, {[]byte("second"), v2}, {[]byte("first"), v1}, {[]byte("first"), v1},
	}
	for i, r := range res {
		if !bytes.Equal(r.Value, want[i].value) {
			t.Errorf("%s: value %s, want %s", r.Secret.File, digest(r.Value), digest(want[i].value))
		}
		if want[i].version != "" && r.VersionID != want[i].version {
			t.Errorf("%s: version %s, want %s", r.Secret.File, r.VersionID, want[i].version)
		}
	}
	if n := fk.Count(opGet, partialARN); n != 1 {
		t.Errorf("%d requests by partial ARN, want 1", n)
	}
}

func TestSDKMissingKeyNamesSecretAndKey(t *testing.T) {
	fk, o := fake(t)
	create(t, fk, "app/json", smfake.Value{String: `{"user":"admin","password":"pa55word"}`})
	_, err := Fetch(context.Background(), onePlan(plan.Secret{File: "pw", ID: "app/json", Key: "pasword"}), o)
	var se *SecretError
	if !errors.As(err, &se) || se.Code != CodeKeyNotFound {
		t.Fatalf("error = %v, want %s", err, CodeKeyNotFound)
	}
	msg := err.Error()
	if !strings.Contains(msg, "app/json") || !strings.Contains(msg, "pasword") {
		t.Errorf("error %q does not name the secret and the key", msg)
	}
	if strings.Contains(msg, "pa55word") || strings.Contains(msg, "admin") {
		t.Error("the error shows a value")
	}
}

// jwt builds a web identity token with the given claims (see
// smfake.WebIdentityToken).
func jwt(t *testing.T, claims map[string]any) string {
	t.Helper()
	token, err := smfake.WebIdentityToken(claims)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// TestSDKCredentialsThroughIRSA runs the SDK's own default chain: with
// AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE set it calls STS
// AssumeRoleWithWebIdentity (here the fake's), and signs GetSecretValue
// with the temporary ASIA... key it gets back. Fetch is given no clients.
func TestSDKCredentialsThroughIRSA(t *testing.T) {
	fk, url := fakeServer(t)
	create(t, fk, "app/db", smfake.Value{String: "s3cret"})

	token := filepath.Join(t.TempDir(), "token")
	claims := map[string]any{
		"aud": []string{"sts.amazonaws.com"},
		"sub": "system:serviceaccount:shop:checkout",
		"iss": "https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE",
		"exp": time.Now().Add(time.Hour).Unix(),
		"iat": time.Now().Unix(),
	}
	if err := os.WriteFile(token, []byte(jwt(t, claims)), 0o600); err != nil {
		t.Fatal(err)
	}
	const role = "arn:aws:iam::111122223333:role/checkout"
	t.Setenv("AWS_ROLE_ARN", role)
	t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", token)
	t.Setenv("AWS_ENDPOINT_URL_STS", url)
	t.Setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", url)
	t.Setenv("AWS_REGION", "us-east-1")

	res, err := Fetch(context.Background(), onePlan(plan.Secret{File: "db", ID: "app/db"}), Options{NewBackOff: fastBackOff})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(res[0].Value, []byte("s3cret")) {
		t.Errorf("value = %s", digest(res[0].Value))
	}
	roles := fk.AssumedRoles()
	if len(roles) != 1 || roles[0].RoleARN != role || roles[0].Subject != "system:serviceaccount:shop:checkout" {
		t.Fatalf("assumed roles = %+v, want one for %s by the checkout service account", roles, role)
	}
	if !strings.HasPrefix(roles[0].AccessKeyID, "ASIA") {
		t.Errorf("issued key %s is not a temporary (ASIA) key", roles[0].AccessKeyID)
	}
	var gets int
	for _, r := range fk.Requests() {
		if r.Operation == opGet {
			gets++
			if r.AccessKeyID != roles[0].AccessKeyID {
				t.Errorf("GetSecretValue signed with %s, want the assumed role's %s", r.AccessKeyID, roles[0].AccessKeyID)
			}
		}
	}
	if gets != 1 {
		t.Errorf("%d GetSecretValue requests, want 1", gets)
	}
}

func TestSDKWrongSecretKeyIsPermanent(t *testing.T) {
	fk, url := fakeServer(t)
	create(t, fk, "app/db", smfake.Value{String: "s3cret"})
	cfg, err := config.LoadDefaultConfig(context.Background(), config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(smfake.DefaultAccessKeyID, "wrong", "")))
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Clients: SDKClients(cfg, func(o *secretsmanager.Options) { o.BaseEndpoint = aws.String(url) }), NewBackOff: fastBackOff}
	_, err = Fetch(context.Background(), onePlan(plan.Secret{File: "db", ID: "app/db"}), o)
	var se *SecretError
	if !errors.As(err, &se) || se.Attempts != 1 {
		t.Fatalf("error = %v, want one permanent failure", err)
	}
	t.Logf("a bad signature answers %s", se.Code)
}

// TestSDKCredentialsThroughPodIdentity runs the SDK's container credential
// provider, which EKS Pod Identity uses: it reads the token file named by
// AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE and asks the agent at
// AWS_CONTAINER_CREDENTIALS_FULL_URI. Here a loopback stand-in for the agent
// hands out the fake's static keys.
func TestSDKCredentialsThroughPodIdentity(t *testing.T) {
	fk, url := fakeServer(t)
	create(t, fk, "app/db", smfake.Value{String: "s3cret"})

	const podToken = "pod-identity-token-value"
	var agentCalls atomic.Int32
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		agentCalls.Add(1)
		if r.Header.Get("Authorization") != podToken {
			http.Error(w, `{"code":"AccessDeniedException","message":"bad token"}`, http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{
			"AccessKeyId":     smfake.DefaultAccessKeyID,
			"SecretAccessKey": smfake.DefaultSecretAccessKey,
			"Expiration":      time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
		})
	}))
	defer agent.Close()
	tokenFile := filepath.Join(t.TempDir(), "eks-pod-identity-token")
	if err := os.WriteFile(tokenFile, []byte(podToken), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", agent.URL+"/v1/credentials")
	t.Setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", tokenFile)
	t.Setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", url)
	t.Setenv("AWS_REGION", "us-east-1")

	res, err := Fetch(context.Background(), onePlan(plan.Secret{File: "db", ID: "app/db"}), Options{NewBackOff: fastBackOff})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(res[0].Value, []byte("s3cret")) {
		t.Errorf("value = %s", digest(res[0].Value))
	}
	if n := agentCalls.Load(); n != 1 {
		t.Errorf("the credentials agent was called %d times, want 1", n)
	}
	if reqs := fk.Requests(); len(reqs) != 1 || reqs[0].AccessKeyID != smfake.DefaultAccessKeyID {
		t.Errorf("requests = %+v, want one signed with the agent's key", reqs)
	}
}

// TestSDKNoPodCredentialsIsPermanent runs the default chain with neither IRSA
// nor Pod Identity settings and instance metadata switched off, as the
// webhook configures the init container: the fetch fails at once with
// NoCredentials and never reaches Secrets Manager.
func TestSDKNoPodCredentialsIsPermanent(t *testing.T) {
	fk, url := fakeServer(t) // smfaketest.IsolateEnv sets AWS_EC2_METADATA_DISABLED=true
	create(t, fk, "app/db", smfake.Value{String: "s3cret"})
	t.Setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", url)
	t.Setenv("AWS_REGION", "us-east-1")

	_, err := Fetch(context.Background(), onePlan(plan.Secret{File: "db", ID: "app/db"}), Options{NewBackOff: fastBackOff})
	var se *SecretError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v, want a *SecretError", err)
	}
	if se.Code != CodeNoCredentials || se.Attempts != 1 {
		t.Errorf("code %s after %d attempts, want %s after 1", se.Code, se.Attempts, CodeNoCredentials)
	}
	if n := fk.Count(opGet, ""); n != 0 {
		t.Errorf("Secrets Manager got %d requests without credentials, want 0", n)
	}
}

// TestSDKCrossAccount: a secret in another account and region, named by its
// ARN, is read from the ARN's region with the pod's own credentials: the
// request is signed for that region, whatever the pod's region is. The same
// secret by name goes to the pod's region, where the other account's secret
// is not.
func TestSDKCrossAccount(t *testing.T) {
	fk, url := fakeServer(t, smfake.WithAccountID("444455556666"), smfake.WithRegion("eu-west-1"))
	o := Options{Clients: fakeClients(t, url, "us-east-1"), NewBackOff: fastBackOff}
	arn, version := create(t, fk, "shared/db", smfake.Value{String: `{"password":"cross-account"}`})
	if !strings.HasPrefix(arn, "arn:aws:secretsmanager:eu-west-1:444455556666:secret:shared/db-") {
		t.Fatalf("the fake issued %s, want an ARN of account 444455556666 in eu-west-1", arn)
	}
	partialARN := strings.TrimSuffix(arn, arn[len(arn)-7:])
	p := &plan.Plan{Version: 1, Dir: "/d", Region: "us-east-1", Secrets: []plan.Secret{
		{File: "full", ID: arn, Key: "password"},
		{File: "partial", ID: partialARN},
	}}
	res, err := Fetch(context.Background(), p, o)
	if err != nil {
		t.Fatal(err)
	}
	if string(res[0].Value) != "cross-account" || res[0].VersionID != version {
		t.Errorf("by full ARN: %s at version %s, want the secret's password at %s", digest(res[0].Value), res[0].VersionID, version)
	}
	if !strings.Contains(string(res[1].Value), "cross-account") {
		t.Errorf("by partial ARN: %s, want the secret", digest(res[1].Value))
	}

	byName := &plan.Plan{Version: 1, Dir: "/d", Region: "us-east-1", Secrets: []plan.Secret{{File: "name", ID: "shared/db"}}}
	if _, err = Fetch(context.Background(), byName, o); err == nil || !strings.Contains(err.Error(), "shared/db") {
		t.Errorf("by name from us-east-1: %v, want a failure naming shared/db (the secret lives in eu-west-1)", err)
	}
}
