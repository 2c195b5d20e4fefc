package smfake

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// TestRequestLogUserAgent: the log keeps each request's user agent, as
// CloudTrail does, so that a test can tell which pod made a call; the admin
// API shows it too.
func TestRequestLogUserAgent(t *testing.T) {
	s, ts := start(t)
	mustCreate(t, s, "db", "v")
	cfg := aws.Config{Region: DefaultRegion, RetryMaxAttempts: 1, AppID: "team-a.web-7d9f",
		Credentials: credentials.NewStaticCredentialsProvider(DefaultAccessKeyID, DefaultSecretAccessKey, "")}
	c := secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) { o.BaseEndpoint = aws.String(ts.URL) })
	if _, err := c.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("db")}); err != nil {
		t.Fatal(err)
	}
	reqs := s.Requests()
	if len(reqs) != 1 || !strings.Contains(reqs[0].UserAgent, "app/team-a.web-7d9f") {
		t.Fatalf("request log %+v, want the user agent with app/team-a.web-7d9f", reqs)
	}
	if got := RequestJSON(reqs[0]); got.UserAgent != reqs[0].UserAgent {
		t.Errorf("RequestJSON.UserAgent = %q", got.UserAgent)
	}

	req, _ := http.NewRequest(http.MethodPost, ts.URL, strings.NewReader("{}"))
	req.Header.Set("User-Agent", strings.Repeat("x", 5000))
	req.Header.Set("X-Amz-Target", "secretsmanager.GetSecretValue")
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	exchange(t, req)
	if reqs := s.Requests(); len(reqs[1].UserAgent) != maxUserAgent {
		t.Errorf("a %d-byte user agent is kept as %d bytes, want %d", 5000, len(reqs[1].UserAgent), maxUserAgent)
	}
}
