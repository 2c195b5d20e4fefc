package smfake

import (
	"context"
	"encoding/xml"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
)

const (
	testRoleARN = "arn:aws:iam::111122223333:role/secretfetch-app"
	testSubject = "system:serviceaccount:shop:api"
	testIssuer  = "https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE"
)

// jwt builds a web identity token with the given claims (see
// WebIdentityToken).
func jwt(t testing.TB, claims map[string]any) string {
	t.Helper()
	token, err := WebIdentityToken(claims)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

func serviceAccountToken(t testing.TB, aud any) string {
	return jwt(t, map[string]any{
		"iss": testIssuer,
		"sub": testSubject,
		"aud": aud,
		"iat": time.Now().Unix(),
		"exp": time.Now().Add(time.Hour).Unix(),
	})
}

func writeToken(t testing.TB, token string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSTSWebIdentityProvider runs IRSA's credential chain as the SDK runs
// it: the web identity provider reads the token file, calls the fake STS,
// and the Secrets Manager client signs with what it got back.
func TestSTSWebIdentityProvider(t *testing.T) {
	s, ts := start(t)
	mustCreate(t, s, "shop/db", "irsa-value")

	stsClient := sts.NewFromConfig(aws.Config{Region: DefaultRegion, RetryMaxAttempts: 1}, func(o *sts.Options) {
		o.BaseEndpoint = aws.String(ts.URL)
	})
	provider := stscreds.NewWebIdentityRoleProvider(stsClient, testRoleARN,
		stscreds.IdentityTokenFile(writeToken(t, serviceAccountToken(t, []string{"sts.amazonaws.com"}))),
		func(o *stscreds.WebIdentityRoleOptions) { o.RoleSessionName = "secretfetch-init" })
	c := client(t, ts.URL, aws.NewCredentialsCache(provider))

	out, err := c.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("shop/db")})
	if err != nil {
		t.Fatalf("GetSecretValue with web identity credentials: %v", err)
	}
	if aws.ToString(out.SecretString) != "irsa-value" {
		t.Errorf("value differs (hash %s)", hash([]byte(aws.ToString(out.SecretString))))
	}

	roles := s.AssumedRoles()
	if len(roles) != 1 {
		t.Fatalf("AssumedRoles = %+v, want one", roles)
	}
	r := roles[0]
	if r.RoleARN != testRoleARN || r.Subject != testSubject || r.SessionName != "secretfetch-init" || !strings.HasPrefix(r.AccessKeyID, "ASIA") || len(r.AccessKeyID) != 20 {
		t.Errorf("assumed role %+v", r)
	}
	reqs := s.Requests()
	if len(reqs) != 2 {
		t.Fatalf("requests %+v, want STS then GetSecretValue", reqs)
	}
	if reqs[0].Operation != stsActionWeb || reqs[0].SecretID != testRoleARN || reqs[0].Status != http.StatusOK {
		t.Errorf("STS request logged as %+v", reqs[0])
	}
	if reqs[1].Operation != "GetSecretValue" || reqs[1].AccessKeyID != r.AccessKeyID || reqs[1].Status != http.StatusOK {
		t.Errorf("GetSecretValue logged as %+v, want access key %s", reqs[1], r.AccessKeyID)
	}
}

// TestSTSDefaultConfigChain is what init-fetch does in a pod with IRSA:
// nothing but environment variables.
func TestSTSDefaultConfigChain(t *testing.T) {
	s, ts := start(t)
	mustCreate(t, s, "shop/db", "v")
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_REGION":                         DefaultRegion,
		"AWS_ROLE_ARN":                       testRoleARN,
		"AWS_WEB_IDENTITY_TOKEN_FILE":        writeToken(t, serviceAccountToken(t, "sts.amazonaws.com")),
		"AWS_ENDPOINT_URL_STS":               ts.URL,
		"AWS_ENDPOINT_URL_SECRETS_MANAGER":   ts.URL,
		"AWS_ACCESS_KEY_ID":                  "",
		"AWS_SECRET_ACCESS_KEY":              "",
		"AWS_SESSION_TOKEN":                  "",
		"AWS_PROFILE":                        "",
		"AWS_CONFIG_FILE":                    filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE":        filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED":          "true",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI": "",
	} {
		t.Setenv(k, v)
	}
	cfg, err := config.LoadDefaultConfig(context.Background(), config.WithRetryMaxAttempts(1))
	if err != nil {
		t.Fatal(err)
	}
	c := secretsmanager.NewFromConfig(cfg)
	if _, err := c.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("shop/db")}); err != nil {
		t.Fatalf("GetSecretValue through the default chain: %v", err)
	}
	if roles := s.AssumedRoles(); len(roles) != 1 || roles[0].RoleARN != testRoleARN {
		t.Errorf("AssumedRoles = %+v", roles)
	}
}

// postSTS sends a raw STS form and returns the status and body.
func postSTS(t testing.TB, url string, form url.Values) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	status, _, b := exchange(t, req)
	return status, b
}

func webIdentityForm(token string) url.Values {
	return url.Values{
		"Action":           {stsActionWeb},
		"Version":          {"2011-06-15"},
		"RoleArn":          {testRoleARN},
		"RoleSessionName":  {"s1"},
		"WebIdentityToken": {token},
	}
}

func TestSTSResponseShape(t *testing.T) {
	s, ts := start(t)
	form := webIdentityForm(serviceAccountToken(t, "sts.amazonaws.com"))
	form.Set("DurationSeconds", "900")
	status, body := postSTS(t, ts.URL, form)
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	var got struct {
		XMLName xml.Name
		Result  struct {
			Credentials struct {
				AccessKeyId, SecretAccessKey, SessionToken, Expiration string
			}
			SubjectFromWebIdentityToken string
			AssumedRoleUser             struct{ AssumedRoleId, Arn string }
			Audience, Provider          string
		} `xml:"AssumeRoleWithWebIdentityResult"`
		RequestId string `xml:"ResponseMetadata>RequestId"`
	}
	if err := xml.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if got.XMLName.Local != "AssumeRoleWithWebIdentityResponse" || got.XMLName.Space != stsNamespace {
		t.Errorf("root element %v", got.XMLName)
	}
	r := got.Result
	exp, err := time.Parse(time.RFC3339, r.Credentials.Expiration)
	if err != nil {
		t.Errorf("Expiration %q: %v", r.Credentials.Expiration, err)
	}
	roles := s.AssumedRoles()
	if len(roles) != 1 || !exp.Equal(roles[0].Expiration.Truncate(time.Second)) {
		t.Errorf("Expiration %v, recorded %+v", exp, roles)
	}
	if d := time.Until(exp); d > 900*time.Second || d < 800*time.Second {
		t.Errorf("DurationSeconds=900 gave credentials expiring in %v", d)
	}
	if r.SubjectFromWebIdentityToken != testSubject || r.Audience != "sts.amazonaws.com" || r.Provider != testIssuer {
		t.Errorf("subject %q audience %q provider %q", r.SubjectFromWebIdentityToken, r.Audience, r.Provider)
	}
	if r.AssumedRoleUser.Arn != "arn:aws:sts::111122223333:assumed-role/secretfetch-app/s1" || !strings.HasSuffix(r.AssumedRoleUser.AssumedRoleId, ":s1") {
		t.Errorf("AssumedRoleUser %+v", r.AssumedRoleUser)
	}
	if r.Credentials.AccessKeyId != roles[0].AccessKeyID || r.Credentials.SecretAccessKey == "" || r.Credentials.SessionToken == "" || got.RequestId == "" {
		t.Errorf("credentials or request ID missing")
	}
}

func TestSTSErrors(t *testing.T) {
	_, ts := start(t)
	expired := jwt(t, map[string]any{"sub": testSubject, "aud": "sts.amazonaws.com", "exp": time.Now().Add(-time.Minute).Unix()})
	tests := []struct {
		name     string
		edit     func(url.Values)
		wantCode string
	}{
		{"not a JWT", func(f url.Values) { f.Set("WebIdentityToken", "opaque-access-token") }, "InvalidIdentityToken"},
		{"payload not JSON", func(f url.Values) { f.Set("WebIdentityToken", "e30.bm90IGpzb24.c2ln") }, "InvalidIdentityToken"},
		{"wrong audience", func(f url.Values) { f.Set("WebIdentityToken", serviceAccountToken(t, "kubernetes.default.svc")) }, "InvalidIdentityToken"},
		{"audience list without sts", func(f url.Values) { f.Set("WebIdentityToken", serviceAccountToken(t, []string{"a", "b"})) }, "InvalidIdentityToken"},
		{"no subject", func(f url.Values) {
			f.Set("WebIdentityToken", jwt(t, map[string]any{"aud": "sts.amazonaws.com"}))
		}, "InvalidIdentityToken"},
		{"expired token", func(f url.Values) { f.Set("WebIdentityToken", expired) }, "ExpiredTokenException"},
		{"bad role ARN", func(f url.Values) { f.Set("RoleArn", "secretfetch-app") }, "ValidationError"},
		{"bad session name", func(f url.Values) { f.Set("RoleSessionName", "a b") }, "ValidationError"},
		{"duration too short", func(f url.Values) { f.Set("DurationSeconds", "60") }, "ValidationError"},
		{"other action", func(f url.Values) { f.Set("Action", "AssumeRole") }, "InvalidAction"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := webIdentityForm(serviceAccountToken(t, "sts.amazonaws.com"))
			tt.edit(form)
			status, body := postSTS(t, ts.URL, form)
			var got struct {
				XMLName   xml.Name
				Error     struct{ Type, Code, Message string }
				RequestId string
			}
			if err := xml.Unmarshal(body, &got); err != nil {
				t.Fatalf("decoding %s: %v", body, err)
			}
			if status != http.StatusBadRequest || got.XMLName.Local != "ErrorResponse" || got.Error.Type != "Sender" ||
				got.Error.Code != tt.wantCode || got.Error.Message == "" || got.RequestId == "" {
				t.Errorf("status %d body %s; want 400 Sender %s", status, body, tt.wantCode)
			}
		})
	}
}

func TestSTSErrorsThroughSDK(t *testing.T) {
	s, ts := start(t)
	c := sts.NewFromConfig(aws.Config{Region: DefaultRegion, RetryMaxAttempts: 1}, func(o *sts.Options) {
		o.BaseEndpoint = aws.String(ts.URL)
	})
	in := &sts.AssumeRoleWithWebIdentityInput{RoleArn: aws.String(testRoleARN), RoleSessionName: aws.String("s1"), WebIdentityToken: aws.String(serviceAccountToken(t, "other"))}
	_, err := c.AssumeRoleWithWebIdentity(context.Background(), in)
	var invalid *ststypes.InvalidIdentityTokenException
	if !errors.As(err, &invalid) {
		t.Fatalf("wrong audience: %v, want *types.InvalidIdentityTokenException", err)
	}

	s.InjectFault(Fault{Operation: stsActionWeb, SecretID: testRoleARN, Code: "IDPCommunicationError", Count: 1})
	in.WebIdentityToken = aws.String(serviceAccountToken(t, "sts.amazonaws.com"))
	_, err = c.AssumeRoleWithWebIdentity(context.Background(), in)
	var idp *ststypes.IDPCommunicationErrorException
	if !errors.As(err, &idp) {
		t.Fatalf("injected fault: %v, want *types.IDPCommunicationErrorException", err)
	}
	out, err := c.AssumeRoleWithWebIdentity(context.Background(), in)
	if err != nil {
		t.Fatalf("after the fault: %v", err)
	}
	if out.Credentials == nil || !strings.HasPrefix(aws.ToString(out.Credentials.AccessKeyId), "ASIA") || out.Credentials.Expiration == nil {
		t.Errorf("credentials %+v", out.Credentials)
	}
	reqs := s.Requests()
	if len(reqs) != 3 || reqs[0].Code != "InvalidIdentityToken" || reqs[1].Code != "IDPCommunicationError" || reqs[2].Code != "" {
		t.Errorf("request log %+v", reqs)
	}
}

func TestExpiredTemporaryCredentials(t *testing.T) {
	now := time.Now()
	// The clock is read by the server's goroutines and moved by the test.
	var clock atomic.Int64
	clock.Store(now.UnixNano())
	s, ts := start(t, WithClock(func() time.Time { return time.Unix(0, clock.Load()) }))
	mustCreate(t, s, "db", "v")
	form := webIdentityForm(serviceAccountToken(t, "sts.amazonaws.com"))
	form.Set("DurationSeconds", "900")
	status, body := postSTS(t, ts.URL, form)
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	var res assumeRoleWithWebIdentityResponse
	if err := xml.Unmarshal(body, &res); err != nil {
		t.Fatal(err)
	}
	cr := res.Result.Credentials
	creds := aws.Credentials{AccessKeyID: cr.AccessKeyId, SecretAccessKey: cr.SecretAccessKey, SessionToken: cr.SessionToken}
	rr := rawRequest{op: "GetSecretValue", body: `{"SecretId":"db"}`, creds: creds}
	if status, _, b := rr.send(t, ts.URL); status != http.StatusOK {
		t.Fatalf("fresh credentials: %d %s", status, errorCode(t, b))
	}
	// Move the fake's clock past expiry; sign at the fake's time so only
	// the expiry can fail.
	later := now.Add(16 * time.Minute)
	clock.Store(later.UnixNano())
	rr.at = later
	if status, _, b := rr.send(t, ts.URL); status != http.StatusBadRequest || errorCode(t, b) != codeExpiredToken {
		t.Fatalf("expired credentials: %d %s, want 400 %s", status, errorCode(t, b), codeExpiredToken)
	}
}

// Temporary credentials that one fake's STS issued are accepted by another
// fake with the same static key (a replica region's), as AWS's work in every
// region; one with another static key refuses them.
func TestTemporaryCredentialsAcrossFakes(t *testing.T) {
	issuer := New()
	cred, id, err := issuer.newTempCredential("arn:aws:sts::111122223333:assumed-role/r/s", time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	peer := New(WithRegion("us-west-2"))
	key, token, principal, err := peer.lookupKey(id, cred.sessionToken)
	if err != nil || key != cred.secretKey || token != cred.sessionToken || principal != cred.principal {
		t.Errorf("the peer's lookup: %v (principal %q), want the issuer's credential", err, principal)
	}
	if _, _, _, err := peer.lookupKey(id, cred.sessionToken+"x"); err == nil {
		t.Error("a tampered token was accepted")
	}
	other := New(WithCredentials("AKIDOTHER", "another-secret"))
	if _, _, _, err := other.lookupKey(id, cred.sessionToken); err == nil {
		t.Error("a fake with another static key accepted the token")
	}
	expired, eid, _ := issuer.newTempCredential("p", time.Now().Add(-time.Minute))
	if _, _, _, err := peer.lookupKey(eid, expired.sessionToken); err == nil {
		t.Error("an expired token was accepted")
	}
}
