package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/secretfetch/secretfetch/internal/smfake"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    options
		wantErr bool
	}{
		{"defaults", nil, options{
			listen: "127.0.0.1:4566", region: smfake.DefaultRegion, accountID: smfake.DefaultAccountID,
			accessKeyID: smfake.DefaultAccessKeyID, secretAccessKey: smfake.DefaultSecretAccessKey,
			seedEnv: "SECRETFETCH_FAKE_SEED", shutdownTimeout: 10 * time.Second,
		}, false},
		{"everything", []string{"--listen", ":4566", "--region", "eu-west-1", "--account-id", "444455556666",
			"--access-key-id", "AKID", "--secret-access-key", "SK", "--seed", "s.json", "--seed-env", "", "--admin", "--shutdown-timeout", "1s", "--replica-suffixes"},
			options{listen: ":4566", region: "eu-west-1", accountID: "444455556666", accessKeyID: "AKID", secretAccessKey: "SK",
				seedFile: "s.json", admin: true, shutdownTimeout: time.Second, replicaSuffixes: true}, false},
		{"unknown flag", []string{"--port", "1"}, options{}, true},
		{"stray argument", []string{"serve"}, options{}, true},
		{"empty key", []string{"--secret-access-key", ""}, options{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseFlags(tt.args, io.Discard)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("options = %+v\nwant      %+v", got, tt.want)
			}
		})
	}
	if _, err := parseFlags([]string{"--help"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: %v, want flag.ErrHelp", err)
	}
}

// syncBuffer is a log sink that the server's goroutines write to while the
// test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestRunServesSeedsAndShutsDown(t *testing.T) {
	const fileCanary, envCanary = "CANARY-file-93ab", "CANARY-env-51cd"
	seedFile := filepath.Join(t.TempDir(), "seed.json")
	if err := os.WriteFile(seedFile, []byte(`[{"name":"demo/db","string":"`+fileCanary+`"},{"name":"demo/bin","binary":"AAEC"}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SECRETFETCH_FAKE_SEED": `[{"name":"demo/env","string":"` + envCanary + `"}]`}

	var logs syncBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--listen", "127.0.0.1:0", "--admin", "--region", "eu-west-1", "--seed", seedFile},
			func(k string) string { return env[k] }, io.Discard, logger, func(a net.Addr) { addrc <- a })
	}()
	var url string
	select {
	case a := <-addrc:
		url = "http://" + a.String()
	case err := <-done:
		t.Fatalf("run ended before listening: %v", err)
	}

	cfg := aws.Config{Region: "eu-west-1", RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(smfake.DefaultAccessKeyID, smfake.DefaultSecretAccessKey, "")}
	c := secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) { o.BaseEndpoint = aws.String(url) })
	for _, tt := range []struct {
		id     string
		string string
		binary []byte
	}{
		{"demo/db", fileCanary, nil},
		{"demo/env", envCanary, nil},
		{"demo/bin", "", []byte{0, 1, 2}},
	} {
		out, err := c.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(tt.id)})
		if err != nil {
			t.Fatalf("GetSecretValue(%s): %v", tt.id, err)
		}
		if tt.binary != nil && !bytes.Equal(out.SecretBinary, tt.binary) || tt.binary == nil && aws.ToString(out.SecretString) != tt.string {
			t.Errorf("%s: value differs from the seed", tt.id)
		}
		if !strings.HasPrefix(aws.ToString(out.ARN), "arn:aws:secretsmanager:eu-west-1:") {
			t.Errorf("%s: ARN %q not in the flag's region", tt.id, aws.ToString(out.ARN))
		}
	}

	for path, want := range map[string]int{"/healthz": http.StatusOK, "/_fake/requests": http.StatusOK, "/_fake/roles": http.StatusOK} {
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after cancel: %v", err)
		}
	case <-time.After(30 * time.Second):
		// A hang guard, not a timing assertion.
		t.Fatal("run did not return after its context ended")
	}

	out := logs.String()
	if strings.Contains(out, fileCanary) || strings.Contains(out, envCanary) {
		t.Fatal("the logs hold a secret value")
	}
	for _, want := range []string{`"msg":"fake-secretsmanager listening"`, `"operation":"GetSecretValue"`, `"secret_id":"demo/env"`, `"status":200`, `"msg":"fake-secretsmanager shutting down"`} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %s", want)
		}
	}
}

func TestRunErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`[{"name":"a"}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"busy address", []string{"--listen", busy.Addr().String()}, nil, "listening on"},
		{"missing seed file", []string{"--listen", "127.0.0.1:0", "--seed", "/nonexistent/seed.json"}, nil, "reading the seed file"},
		{"bad seed file", []string{"--listen", "127.0.0.1:0", "--seed", bad}, nil, "seed file"},
		{"bad seed env", []string{"--listen", "127.0.0.1:0"}, map[string]string{"SECRETFETCH_FAKE_SEED": `{`}, "environment variable SECRETFETCH_FAKE_SEED"},
		{"bad flag", []string{"--nope"}, nil, "nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			err := run(ctx, tt.args, func(k string) string { return tt.env[k] }, io.Discard, slog.New(slog.DiscardHandler), func(net.Addr) { cancel() })
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}
