package smfake

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"
)

// staticCreds are the fake's default credentials, as a client holds them.
var staticCreds = aws.Credentials{AccessKeyID: DefaultAccessKeyID, SecretAccessKey: DefaultSecretAccessKey}

// start serves a new fake on loopback for the test.
func start(t testing.TB, opts ...Option) (*Server, *httptest.Server) {
	t.Helper()
	s := New(opts...)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts
}

// client is the real SDK client against the fake, with static credentials
// and no SDK retries, so that every call is exactly one request.
func client(t testing.TB, url string, creds aws.CredentialsProvider) *secretsmanager.Client {
	t.Helper()
	if creds == nil {
		creds = credentials.NewStaticCredentialsProvider(DefaultAccessKeyID, DefaultSecretAccessKey, "")
	}
	cfg := aws.Config{Region: DefaultRegion, Credentials: creds, RetryMaxAttempts: 1}
	return secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) {
		o.BaseEndpoint = aws.String(url)
	})
}

// fixedClock returns a clock stopped at a millisecond-precise instant close
// to real time, so that the SDK's signatures (made with the real clock)
// stay within the allowed skew while dates in answers are predictable.
func fixedClock() (time.Time, Option) {
	t0 := time.Now().UTC().Truncate(time.Millisecond)
	return t0, WithClock(func() time.Time { return t0 })
}

// mustCreate seeds a string secret and returns its ARN and version ID.
func mustCreate(t testing.TB, s *Server, name, value string) (string, string) {
	t.Helper()
	arn, vid, err := s.CreateSecret(name, Value{String: value})
	if err != nil {
		t.Fatalf("CreateSecret(%q): %v", name, err)
	}
	return arn, vid
}

// apiCode returns the smithy error code of err, or "" if it has none.
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// rawRequest is a Secrets Manager call built by hand, for the tests that
// tamper with what the SDK would send.
type rawRequest struct {
	op      string
	body    string
	creds   aws.Credentials
	region  string
	service string
	at      time.Time
	header  map[string]string // set before signing
	after   func(*http.Request)
}

// send signs the request with the SDK's signer (as the SDK would), lets
// after tamper with it, and returns the status and decoded error body.
func (rr rawRequest) send(t testing.TB, url string) (int, http.Header, []byte) {
	t.Helper()
	if rr.region == "" {
		rr.region = DefaultRegion
	}
	if rr.service == "" {
		rr.service = "secretsmanager"
	}
	if rr.at.IsZero() {
		rr.at = time.Now()
	}
	if rr.creds.AccessKeyID == "" {
		rr.creds = staticCreds
	}
	req, err := http.NewRequest(http.MethodPost, url+"/", bytes.NewReader([]byte(rr.body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", jsonContentType)
	req.Header.Set("X-Amz-Target", targetPrefix+rr.op)
	for k, v := range rr.header {
		req.Header.Set(k, v)
	}
	sum := sha256.Sum256([]byte(rr.body))
	if err := v4.NewSigner().SignHTTP(context.Background(), rr.creds, req, hex.EncodeToString(sum[:]), rr.service, rr.region, rr.at); err != nil {
		t.Fatalf("signing: %v", err)
	}
	if rr.after != nil {
		rr.after(req)
	}
	return exchange(t, req)
}

// exchange sends req and returns the answer's status, header and body.
func exchange(t testing.TB, req *http.Request) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("sending %s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the answer to %s %s: %v", req.Method, req.URL, err)
	}
	return resp.StatusCode, resp.Header, b
}

// errorCode decodes an AWS JSON error body.
func errorCode(t testing.TB, body []byte) string {
	t.Helper()
	var e struct {
		Type string `json:"__type"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("decoding error body (%d bytes): %v", len(body), err)
	}
	return e.Type
}

// hash identifies a value in a failure message without showing it.
func hash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:4])
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
