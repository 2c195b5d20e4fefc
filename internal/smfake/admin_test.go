package smfake

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/google/go-cmp/cmp"
)

func TestParseSeed(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    int
		wantErr bool
	}{
		{"string and binary", `[{"name":"demo/db","string":"s"},{"name":"x","binary":"AAE="}]`, 2, false},
		{"empty string is a value", `[{"name":"a","string":""}]`, 1, false},
		{"with stages", `[{"name":"a","string":"s","stages":["AWSPENDING"]}]`, 1, false},
		{"empty list", `[]`, 0, false},
		{"no value", `[{"name":"a"}]`, 0, true},
		{"both values", `[{"name":"a","string":"s","binary":"AA=="}]`, 0, true},
		{"no name", `[{"string":"s"}]`, 0, true},
		{"typo", `[{"name":"a","strnig":"s"}]`, 0, true},
		{"bad base64", `[{"name":"a","binary":"!!"}]`, 0, true},
		{"not a list", `{"name":"a","string":"s"}`, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSeed([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if len(got) != tt.want {
				t.Errorf("%d entries, want %d", len(got), tt.want)
			}
		})
	}
}

func TestParseSeedErrorsHideValues(t *testing.T) {
	const canary = "CANARY-7f3a9"
	for _, in := range []string{
		`[{"name":"a","string":"` + canary + `","binary":"AA=="}]`,
		`[{"name":"a","string":"` + canary + `"`,
		`[{"name":"a","string":["` + canary + `"]}]`,
	} {
		_, err := ParseSeed([]byte(in))
		if err == nil {
			t.Fatalf("no error for a %d-byte bad seed", len(in))
		}
		if strings.Contains(err.Error(), canary) {
			t.Errorf("error message reveals the value")
		}
	}
}

func TestSeedAndUpsert(t *testing.T) {
	s, ts := start(t)
	entries, err := ParseSeed([]byte(`[{"name":"demo/db","string":"one"},{"name":"demo/bin","binary":"AAE="},{"name":"demo/db","string":"two"}]`))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Seed(entries); err != nil {
		t.Fatal(err)
	}
	c := client(t, ts.URL, nil)
	ctx := context.Background()
	out, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("demo/db")})
	if err != nil || aws.ToString(out.SecretString) != "two" {
		t.Fatalf("demo/db: %v (value hash %s)", err, hash([]byte(aws.ToString(out.SecretString))))
	}
	prev, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("demo/db"), VersionStage: aws.String(StagePrevious)})
	if err != nil || aws.ToString(prev.SecretString) != "one" {
		t.Fatalf("demo/db AWSPREVIOUS: %v", err)
	}
	bin, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("demo/bin")})
	if err != nil || !bytes.Equal(bin.SecretBinary, []byte{0, 1}) {
		t.Fatalf("demo/bin: %v (%d bytes)", err, len(bin.SecretBinary))
	}
}

// adminCall sends a JSON request to the admin API and decodes the answer.
func adminCall(t *testing.T, method, url, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	status, _, b := exchange(t, req)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decoding %s: %v", method, url, b, err)
		}
	}
	return status
}

func TestAdminAPI(t *testing.T) {
	s := New()
	ts := httptest.NewServer(s.Handler(true))
	t.Cleanup(ts.Close)
	c := client(t, ts.URL, nil)
	ctx := context.Background()

	var stored map[string]string
	if status := adminCall(t, http.MethodPost, ts.URL+"/_fake/secrets", `{"name":"demo/db","string":"v1"}`, &stored); status != http.StatusOK {
		t.Fatalf("POST /_fake/secrets: %d", status)
	}
	if stored["name"] != "demo/db" || !strings.HasPrefix(stored["arn"], "arn:aws:secretsmanager:us-east-1:111122223333:secret:demo/db-") || stored["versionId"] == "" {
		t.Errorf("answer %v", stored)
	}
	var second map[string]string
	adminCall(t, http.MethodPost, ts.URL+"/_fake/secrets", `{"name":"demo/db","string":"v2","stages":["AWSPENDING"]}`, &second)
	var secrets []secretJSON
	adminCall(t, http.MethodGet, ts.URL+"/_fake/secrets", "", &secrets)
	want := []secretJSON{{Name: "demo/db", ARN: stored["arn"], VersionStages: map[string][]string{
		stored["versionId"]: {StageCurrent},
		second["versionId"]: {"AWSPENDING"},
	}}}
	if diff := cmp.Diff(want, secrets); diff != "" {
		t.Errorf("GET /_fake/secrets (-want +got):\n%s", diff)
	}

	var fault FaultJSON
	if status := adminCall(t, http.MethodPost, ts.URL+"/_fake/faults", `{"operation":"GetSecretValue","secretId":"demo/db","code":"ThrottlingException","count":2,"latency":"1ms"}`, &fault); status != http.StatusOK {
		t.Fatalf("POST /_fake/faults: %d", status)
	}
	if fault.Latency != "1ms" || fault.Count != 2 {
		t.Errorf("fault echoed as %+v", fault)
	}
	for range 2 {
		if _, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("demo/db")}); apiCode(err) != "ThrottlingException" {
			t.Fatalf("with the fault: %v", err)
		}
	}
	if _, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("demo/db")}); err != nil {
		t.Fatalf("after the fault's count: %v", err)
	}

	adminCall(t, http.MethodPost, ts.URL+"/_fake/faults", `{"code":"InternalServiceError"}`, nil)
	var faults []FaultJSON
	adminCall(t, http.MethodGet, ts.URL+"/_fake/faults", "", &faults)
	if len(faults) != 1 || faults[0].Code != "InternalServiceError" {
		t.Errorf("GET /_fake/faults = %+v", faults)
	}
	if status := adminCall(t, http.MethodDelete, ts.URL+"/_fake/faults", "", nil); status != http.StatusNoContent {
		t.Errorf("DELETE /_fake/faults: %d", status)
	}
	if len(s.Faults()) != 0 {
		t.Error("faults remain after DELETE")
	}

	var reqs []RequestJSON
	adminCall(t, http.MethodGet, ts.URL+"/_fake/requests?operation=GetSecretValue", "", &reqs)
	if len(reqs) != 3 || reqs[0].Code != "ThrottlingException" || reqs[0].Status != 400 || reqs[2].Code != "" || reqs[2].SecretID != "demo/db" || reqs[2].AccessKeyID != DefaultAccessKeyID {
		t.Errorf("GET /_fake/requests = %+v", reqs)
	}
	var count map[string]int
	adminCall(t, http.MethodGet, ts.URL+"/_fake/count?operation=GetSecretValue&secretId=demo/db", "", &count)
	if count["count"] != 3 {
		t.Errorf("GET /_fake/count = %v", count)
	}
	var roles []RoleJSON
	adminCall(t, http.MethodGet, ts.URL+"/_fake/roles", "", &roles)
	if len(roles) != 0 {
		t.Errorf("roles %+v", roles)
	}
	adminCall(t, http.MethodDelete, ts.URL+"/_fake/requests", "", nil)
	if len(s.Requests()) != 0 {
		t.Error("requests remain after DELETE")
	}

	// The admin API answers no AWS request log entries of its own.
	adminCall(t, http.MethodGet, ts.URL+"/_fake/requests", "", &reqs)
	if len(s.Requests()) != 0 {
		t.Error("an admin call was logged as an AWS request")
	}
}

func TestAdminAPIRejects(t *testing.T) {
	s := New()
	ts := httptest.NewServer(s.Handler(true))
	t.Cleanup(ts.Close)
	const canary = "CANARY-a1b2c3"
	tests := []struct {
		name, method, path, body string
		want                     int
	}{
		{"secret without value", http.MethodPost, "/_fake/secrets", `{"name":"a"}`, http.StatusBadRequest},
		{"secret with a bad name", http.MethodPost, "/_fake/secrets", `{"name":"a b","string":"` + canary + `"}`, http.StatusBadRequest},
		{"secret with a wrong type", http.MethodPost, "/_fake/secrets", `{"name":"a","string":["` + canary + `"]}`, http.StatusBadRequest},
		{"secret with an unknown member", http.MethodPost, "/_fake/secrets", `{"name":"a","value":"` + canary + `"}`, http.StatusBadRequest},
		{"fault with a bad latency", http.MethodPost, "/_fake/faults", `{"code":"X","latency":"soon"}`, http.StatusBadRequest},
		{"fault with nothing to do", http.MethodPost, "/_fake/faults", `{"operation":"GetSecretValue"}`, http.StatusBadRequest},
		{"fault with a 200 status", http.MethodPost, "/_fake/faults", `{"code":"X","status":200}`, http.StatusBadRequest},
		{"fault with a negative count", http.MethodPost, "/_fake/faults", `{"code":"X","count":-1}`, http.StatusBadRequest},
		{"wrong method", http.MethodPut, "/_fake/faults", `{}`, http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, ts.URL+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			status, _, b := exchange(t, req)
			if status != tt.want {
				t.Errorf("status %d, want %d", status, tt.want)
			}
			if bytes.Contains(b, []byte(canary)) {
				t.Error("the error answer reveals the value")
			}
		})
	}
	if len(s.Faults()) != 0 {
		t.Errorf("rejected faults were injected: %+v", s.Faults())
	}
}

func TestHandlerWithoutAdmin(t *testing.T) {
	s := New()
	ts := httptest.NewServer(s.Handler(false))
	t.Cleanup(ts.Close)
	resp, err := http.Get(ts.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz: %d", resp.StatusCode)
	}
	status := adminCall(t, http.MethodPost, ts.URL+"/_fake/secrets", `{"name":"a","string":"v"}`, nil)
	if status == http.StatusOK {
		t.Fatal("the admin API answered while switched off")
	}
	if _, ok := s.Secret("a"); ok {
		t.Error("a secret was stored through the switched-off admin API")
	}
}

// TestLogsNeverHoldValues runs every path that touches a value, including
// failures, and checks that no log line holds it, that each line is JSON,
// and that the lines carry operation, secret ID and status.
func TestLogsNeverHoldValues(t *testing.T) {
	const canary = "CANARY-d41d8cd98f00"
	var logs bytes.Buffer
	s := New(WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
	ts := httptest.NewServer(s.Handler(true))
	t.Cleanup(ts.Close)
	c := client(t, ts.URL, nil)
	ctx := context.Background()

	adminCall(t, http.MethodPost, ts.URL+"/_fake/secrets", `{"name":"canary/admin","string":"`+canary+`"}`, nil)
	_, _ = c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("canary/sdk"), SecretString: aws.String(canary)})
	_, _ = c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("canary/sdk"), SecretString: aws.String(canary)})
	_, _ = c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("canary/sdk"), SecretBinary: []byte(canary)})
	_, _ = c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("canary/sdk")})
	_, _ = c.BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{SecretIdList: []string{"canary/sdk", "canary/admin"}})
	rawRequest{op: "PutSecretValue", body: `{"SecretId":"canary/sdk","SecretString":5,"x":"` + canary + `"}`}.send(t, ts.URL)
	rawRequest{op: "PutSecretValue", body: `{"SecretId":"canary/sdk","SecretString":"` + canary + `"}`, creds: aws.Credentials{AccessKeyID: DefaultAccessKeyID, SecretAccessKey: "bad"}}.send(t, ts.URL)

	if bytes.Contains(logs.Bytes(), []byte(canary)) {
		t.Fatal("a log line holds a secret value")
	}
	lines := bytes.Split(bytes.TrimSpace(logs.Bytes()), []byte("\n"))
	if len(lines) < 8 {
		t.Fatalf("%d log lines, want at least 8", len(lines))
	}
	sawGet := false
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal(l, &rec); err != nil {
			t.Fatalf("log line is not JSON: %v", err)
		}
		if rec["msg"] == "request" && rec["operation"] == "GetSecretValue" {
			sawGet = true
			if rec["secret_id"] != "canary/sdk" || rec["status"] != float64(200) {
				t.Errorf("GetSecretValue log line %v", rec)
			}
		}
	}
	if !sawGet {
		t.Error("no log line for GetSecretValue")
	}
}

// BenchmarkGetSecretValue measures one signed GetSecretValue through the
// SDK client against the fake over loopback.
func BenchmarkGetSecretValue(b *testing.B) {
	s, ts := start(b)
	mustCreate(b, s, "bench/db", strings.Repeat("x", 1024))
	c := client(b, ts.URL, nil)
	ctx := context.Background()
	in := &secretsmanager.GetSecretValueInput{SecretId: aws.String("bench/db")}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.GetSecretValue(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
	// The log grows per call; keep it from skewing memory figures.
	s.ResetRequests()
}

// BenchmarkGetSecretValueLatency shows the injected latency dominating a
// call, as the init-fetch fetch benchmarks rely on.
func BenchmarkGetSecretValueLatency(b *testing.B) {
	s, ts := start(b)
	mustCreate(b, s, "bench/db", "v")
	s.InjectFault(Fault{Latency: 2 * time.Millisecond})
	c := client(b, ts.URL, nil)
	ctx := context.Background()
	in := &secretsmanager.GetSecretValueInput{SecretId: aws.String("bench/db")}
	for b.Loop() {
		if _, err := c.GetSecretValue(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
}
