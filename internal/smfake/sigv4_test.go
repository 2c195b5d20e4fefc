package smfake

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

func TestSigV4(t *testing.T) {
	s, ts := start(t)
	mustCreate(t, s, "db", "value")
	const body = `{"SecretId":"db"}`
	s.mu.Lock()
	s.tempKeys["ASIATEMPORARYKEY"] = &tempCredential{secretKey: "temp-secret", sessionToken: "the-token", expires: time.Now().Add(time.Hour), principal: "arn:aws:sts::111122223333:assumed-role/r/s"}
	s.tempKeys["ASIAEXPIREDKEY"] = &tempCredential{secretKey: "temp-secret", sessionToken: "old-token", expires: time.Now().Add(-time.Minute)}
	s.mu.Unlock()
	temp := aws.Credentials{AccessKeyID: "ASIATEMPORARYKEY", SecretAccessKey: "temp-secret", SessionToken: "the-token"}

	tests := []struct {
		name     string
		req      rawRequest
		wantCode string // "" = success
	}{
		{"valid", rawRequest{}, ""},
		{"valid temporary credentials", rawRequest{creds: temp}, ""},
		{"wrong content hash header", rawRequest{header: map[string]string{"X-Amz-Content-Sha256": sha256Hex("{}")}}, codeInvalidSignature},
		{"wrong secret key", rawRequest{creds: aws.Credentials{AccessKeyID: DefaultAccessKeyID, SecretAccessKey: "not-the-key"}}, codeInvalidSignature},
		{"unknown access key", rawRequest{creds: aws.Credentials{AccessKeyID: "AKIDUNKNOWN", SecretAccessKey: DefaultSecretAccessKey}}, codeUnrecognizedClient},
		{"wrong region", rawRequest{region: "eu-west-1"}, codeInvalidSignature},
		{"wrong service", rawRequest{service: "ssm"}, codeInvalidSignature},
		{"signed six minutes ago", rawRequest{at: time.Now().Add(-6 * time.Minute)}, codeInvalidSignature},
		{"signed six minutes ahead", rawRequest{at: time.Now().Add(6 * time.Minute)}, codeInvalidSignature},
		{"signed four minutes ago", rawRequest{at: time.Now().Add(-4 * time.Minute)}, ""},
		{"static key with a session token", rawRequest{creds: aws.Credentials{AccessKeyID: DefaultAccessKeyID, SecretAccessKey: DefaultSecretAccessKey, SessionToken: "x"}}, codeUnrecognizedClient},
		{"temporary key without its token", rawRequest{creds: aws.Credentials{AccessKeyID: temp.AccessKeyID, SecretAccessKey: temp.SecretAccessKey}}, codeUnrecognizedClient},
		{"temporary key with another token", rawRequest{creds: aws.Credentials{AccessKeyID: temp.AccessKeyID, SecretAccessKey: temp.SecretAccessKey, SessionToken: "other"}}, codeUnrecognizedClient},
		{"expired temporary key", rawRequest{creds: aws.Credentials{AccessKeyID: "ASIAEXPIREDKEY", SecretAccessKey: "temp-secret", SessionToken: "old-token"}}, codeExpiredToken},
		{"tampered body", rawRequest{after: func(r *http.Request) {
			r.Body = io.NopCloser(strings.NewReader(`{"SecretId":"dx"}`))
		}}, codeInvalidSignature},
		{"tampered body with a hash header", rawRequest{header: map[string]string{"X-Amz-Content-Sha256": sha256Hex(body)}, after: func(r *http.Request) {
			r.Body = io.NopCloser(strings.NewReader(`{"SecretId":"dx"}`))
		}}, codeInvalidSignature},
		{"tampered signed header", rawRequest{after: func(r *http.Request) {
			r.Header.Set("X-Amz-Target", targetPrefix+"DescribeSecret")
		}}, codeInvalidSignature},
		{"unsigned header added", rawRequest{after: func(r *http.Request) {
			r.Header.Set("X-Extra", "not signed, not checked")
		}}, ""},
		{"signature altered", rawRequest{after: func(r *http.Request) {
			h := r.Header.Get("Authorization")
			last := h[len(h)-1]
			flip := byte('0')
			if last == '0' {
				flip = '1'
			}
			r.Header.Set("Authorization", h[:len(h)-1]+string(flip))
		}}, codeInvalidSignature},
		{"X-Amz-Date changed", rawRequest{after: func(r *http.Request) {
			r.Header.Set("X-Amz-Date", time.Now().Add(time.Second).UTC().Format(amzDateFormat))
		}}, codeInvalidSignature},
		{"scope date differs from X-Amz-Date", rawRequest{after: func(r *http.Request) {
			r.Header.Set("X-Amz-Date", time.Now().Add(-24*time.Hour).UTC().Format(amzDateFormat))
		}}, codeInvalidSignature},
		{"no X-Amz-Date", rawRequest{after: func(r *http.Request) { r.Header.Del("X-Amz-Date") }}, codeIncompleteSignature},
		{"no Authorization", rawRequest{after: func(r *http.Request) { r.Header.Del("Authorization") }}, codeMissingAuthentication},
		{"another algorithm", rawRequest{after: func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), sigV4Algorithm, "AWS4-ECDSA-P256-SHA256", 1))
		}}, codeIncompleteSignature},
		{"no SignedHeaders", rawRequest{after: func(r *http.Request) {
			h := r.Header.Get("Authorization")
			i, j := strings.Index(h, "SignedHeaders="), strings.Index(h, "Signature=")
			r.Header.Set("Authorization", h[:i]+h[j:])
		}}, codeIncompleteSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.op, tt.req.body = "GetSecretValue", body
			status, _, b := tt.req.send(t, ts.URL)
			if tt.wantCode == "" {
				if status != http.StatusOK {
					t.Fatalf("status %d code %q, want 200", status, errorCode(t, b))
				}
				return
			}
			if got := errorCode(t, b); status != http.StatusBadRequest || got != tt.wantCode {
				t.Fatalf("status %d code %q, want 400 %s", status, got, tt.wantCode)
			}
		})
	}
}

func TestSigV4ContentHashHeader(t *testing.T) {
	s, ts := start(t)
	mustCreate(t, s, "db", "value")
	body := `{"SecretId":"db"}`
	status, _, b := rawRequest{op: "GetSecretValue", body: body, header: map[string]string{"X-Amz-Content-Sha256": sha256Hex(body)}}.send(t, ts.URL)
	if status != http.StatusOK {
		t.Fatalf("status %d code %q, want 200", status, errorCode(t, b))
	}
}

func TestSigV4Messages(t *testing.T) {
	_, ts := start(t, WithRegion("eu-central-1"))
	tests := []struct {
		name string
		req  rawRequest
		want []string // substrings of the message
	}{
		{"region", rawRequest{region: "us-east-1"}, []string{"'us-east-1'", "'eu-central-1'"}},
		{"service", rawRequest{region: "eu-central-1", service: "kms"}, []string{"'secretsmanager'"}},
		{"expired", rawRequest{region: "eu-central-1", at: time.Now().Add(-time.Hour)}, []string{"Signature expired"}},
		{"future", rawRequest{region: "eu-central-1", at: time.Now().Add(time.Hour)}, []string{"Signature not yet current"}},
		{"mismatch", rawRequest{region: "eu-central-1", creds: aws.Credentials{AccessKeyID: DefaultAccessKeyID, SecretAccessKey: "x"}}, []string{"does not match the signature you provided"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.op, tt.req.body = "ListSecrets", "{}"
			_, _, b := tt.req.send(t, ts.URL)
			for _, w := range tt.want {
				if !bytes.Contains(b, []byte(w)) {
					t.Errorf("body %s lacks %q", b, w)
				}
			}
		})
	}
}

// TestSigV4WithClock shows that skew is measured against WithClock, not
// the machine's clock.
func TestSigV4WithClock(t *testing.T) {
	for _, tt := range []struct {
		name     string
		offset   time.Duration
		wantCode string
	}{
		{"server 10 minutes ahead", 10 * time.Minute, codeInvalidSignature},
		{"server 10 minutes behind", -10 * time.Minute, codeInvalidSignature},
		{"server 2 minutes ahead", 2 * time.Minute, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, ts := start(t, WithClock(func() time.Time { return time.Now().Add(tt.offset) }))
			c := client(t, ts.URL, nil)
			_, err := c.ListSecrets(context.Background(), &secretsmanager.ListSecretsInput{})
			if got := apiCode(err); got != tt.wantCode {
				t.Fatalf("ListSecrets: code %q (%v), want %q", got, err, tt.wantCode)
			}
		})
	}
}

func TestSigV4CustomCredentials(t *testing.T) {
	s, ts := start(t, WithCredentials("AKIDCUSTOM", "custom-secret"))
	mustCreate(t, s, "db", "v")
	ctx := context.Background()
	good := client(t, ts.URL, credentials.NewStaticCredentialsProvider("AKIDCUSTOM", "custom-secret", ""))
	if _, err := good.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("db")}); err != nil {
		t.Fatalf("custom credentials: %v", err)
	}
	defaults := client(t, ts.URL, nil)
	_, err := defaults.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("db")})
	if apiCode(err) != codeUnrecognizedClient {
		t.Fatalf("default credentials against custom ones: %v, want %s", err, codeUnrecognizedClient)
	}
	reqs := s.Requests()
	if len(reqs) != 2 || reqs[0].AccessKeyID != "AKIDCUSTOM" || reqs[1].AccessKeyID != DefaultAccessKeyID || reqs[1].Code != codeUnrecognizedClient {
		t.Errorf("request log %+v", reqs)
	}
}
