package initfetch

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/cenkalti/backoff/v4"

	"github.com/secretfetch/secretfetch/internal/fetch"
	"github.com/secretfetch/secretfetch/internal/plan"
	"github.com/secretfetch/secretfetch/internal/smfake"
	"github.com/secretfetch/secretfetch/internal/tmpfs"
	"github.com/secretfetch/secretfetch/internal/tmpfs/tmpfstest"
)

// canary is part of every secret value in these tests; it must never show
// up in logs, errors or termination messages.
const canary = "CANARY-9f8e7d"

type harness struct {
	fk      *smfake.Server
	opts    []Option
	termLog string // the stand-in for /dev/termination-log; absent until a test creates it
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	none := filepath.Join(t.TempDir(), "none")
	for _, k := range []string{"AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"} {
		t.Setenv(k, none)
	}
	for _, k := range []string{"AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"} {
		t.Setenv(k, "")
	}
	fk := smfake.New()
	srv := httptest.NewServer(fk)
	t.Cleanup(srv.Close)
	cfg, err := config.LoadDefaultConfig(context.Background(), config.WithRegion(fk.Region()),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(smfake.DefaultAccessKeyID, smfake.DefaultSecretAccessKey, "")))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{fk: fk, termLog: filepath.Join(t.TempDir(), "termination-log")}
	h.opts = []Option{
		WithClients(fetch.SDKClients(cfg, func(o *secretsmanager.Options) { o.BaseEndpoint = aws.String(srv.URL) })),
		WithBackOff(func() backoff.BackOff {
			return backoff.NewExponentialBackOff(backoff.WithInitialInterval(time.Millisecond),
				backoff.WithMaxInterval(5*time.Millisecond), backoff.WithMaxElapsedTime(0))
		}),
		withDefaultTerminationLog(h.termLog),
	}
	return h
}

// secret creates a secret whose value holds the canary and returns the value.
func (h *harness) secret(t *testing.T, name string) []byte {
	t.Helper()
	v := "value-of-" + name + "-" + canary
	if _, _, err := h.fk.CreateSecret(name, smfake.Value{String: v}); err != nil {
		t.Fatal(err)
	}
	return []byte(v)
}

// run runs init-fetch and returns its error and its log lines, after
// checking that every line is JSON and none carries the canary.
func (h *harness) run(t *testing.T, env map[string]string, args ...string) (error, []map[string]any) {
	t.Helper()
	var stderr bytes.Buffer
	err := Run(context.Background(), args, func(k string) string { return env[k] }, &stderr, h.opts...)
	if err != nil && strings.Contains(err.Error(), canary) {
		t.Errorf("the error shows a secret value")
	}
	var lines []map[string]any
	sc := bufio.NewScanner(&stderr)
	for sc.Scan() {
		line := sc.Bytes()
		if bytes.Contains(line, []byte(canary)) {
			t.Errorf("a log line shows a secret value")
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			if slices.Contains(args, "-h") {
				continue // the usage text
			}
			t.Errorf("log line is not JSON: %q", line)
			continue
		}
		lines = append(lines, m)
	}
	if b, err := os.ReadFile(h.termLog); err == nil && bytes.Contains(b, []byte(canary)) {
		t.Errorf("the termination message shows a secret value")
	}
	return err, lines
}

// withMsg returns the log lines with the given message.
func withMsg(lines []map[string]any, msg string) []map[string]any {
	var out []map[string]any
	for _, l := range lines {
		if l["msg"] == msg {
			out = append(out, l)
		}
	}
	return out
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func planJSON(t *testing.T, p *plan.Plan) string {
	t.Helper()
	s, err := plan.Encode(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRunWritesEverySecret(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	want := map[string][]byte{"db": h.secret(t, "app/db"), "api": h.secret(t, "app/api")}
	p := planJSON(t, &plan.Plan{Version: 1, Dir: dir, Secrets: []plan.Secret{
		{File: "db", ID: "app/db"},
		{File: "api", ID: "app/api", Mode: 0o444},
	}})
	err, lines := h.run(t, map[string]string{plan.EnvVar: p}, "--allow-non-tmpfs")
	if err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]fs.FileMode{"db": 0o400, "api": 0o444} {
		path := filepath.Join(dir, name)
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != mode {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode(), mode)
		}
		got, _ := os.ReadFile(path)
		if !bytes.Equal(got, want[name]) {
			t.Errorf("%s: content differs (%d bytes, want %d)", name, len(got), len(want[name]))
		}
	}
	fetched := withMsg(lines, "fetched secret")
	if len(fetched) != 2 {
		t.Fatalf("%d 'fetched secret' lines, want 2: %v", len(fetched), lines)
	}
	for _, l := range fetched {
		for _, k := range []string{"id", "versionId", "file", "bytes", "attempts", "durationMs"} {
			if _, ok := l[k]; !ok {
				t.Errorf("log line %v lacks %q", l, k)
			}
		}
		if l["file"] == "db" && (l["id"] != "app/db" || l["bytes"] != float64(len(want["db"])) || l["attempts"] != float64(1)) {
			t.Errorf("log line for db = %v", l)
		}
	}
	if len(withMsg(lines, "wrote secrets")) != 1 {
		t.Error("no 'wrote secrets' line")
	}
	if len(lines) == 0 || lines[0]["level"] != "WARN" || !strings.Contains(lines[0]["msg"].(string), "--allow-non-tmpfs") {
		t.Errorf("the first line is not the --allow-non-tmpfs warning: %v", lines)
	}
	if _, err := os.Stat(h.termLog); !errors.Is(err, fs.ErrNotExist) {
		t.Error("a termination log was created although none existed and the flag was not given")
	}
}

func TestRunOnRealTmpfs(t *testing.T) {
	tmpfstest.Run(t, func(t *testing.T, dir string) {
		h := newHarness(t)
		want := h.secret(t, "app/db")
		err, lines := h.run(t, nil, "--dir", dir, "--secret", "db=app/db", "--region", "us-east-1")
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, "db"))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("db: %d bytes, %v; want the %d bytes of the secret", len(got), err, len(want))
		}
		for _, l := range lines {
			if l["level"] == "WARN" {
				t.Errorf("warning on a tmpfs: %v", l)
			}
		}
	})
}

func TestRunRefusesDiskDirectory(t *testing.T) {
	h := newHarness(t)
	h.secret(t, "app/db")
	dir := t.TempDir()
	if err := tmpfs.CheckMemoryBacked(dir); err == nil {
		t.Skipf("skipping: %s is memory-backed here; set TMPDIR to a disk", dir)
	}
	if err := os.WriteFile(h.termLog, nil, 0o644); err != nil { // as kubelet does
		t.Fatal(err)
	}
	err, _ := h.run(t, nil, "--dir", dir, "--secret", "db=app/db", "--region", "us-east-1")
	if !errors.Is(err, tmpfs.ErrNotMemoryBacked) {
		t.Fatalf("Run = %v, want ErrNotMemoryBacked", err)
	}
	if n := len(h.fk.Requests()); n != 0 {
		t.Errorf("%d requests sent to Secrets Manager before the directory was refused", n)
	}
	if got := names(t, dir); len(got) != 0 {
		t.Errorf("directory holds %q", got)
	}
	msg, _ := os.ReadFile(h.termLog)
	if !strings.Contains(string(msg), "not on a memory-backed file system") {
		t.Errorf("termination message = %q", msg)
	}
}

func TestRunPartialFailureLeavesNoFiles(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	if err := os.WriteFile(h.termLog, []byte("stale message from before"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &plan.Plan{Version: 1, Dir: dir, Region: "us-east-1"}
	for i := range 20 {
		id := fmt.Sprintf("app/s%02d", i)
		h.secret(t, id)
		p.Secrets = append(p.Secrets, plan.Secret{File: fmt.Sprintf("s%02d", i), ID: id})
	}
	h.fk.InjectFault(smfake.Fault{Operation: "GetSecretValue", SecretID: "app/s03", Code: "AccessDeniedException"})
	h.fk.InjectFault(smfake.Fault{Operation: "GetSecretValue", SecretID: "app/s17", Code: "DecryptionFailure"})
	err, lines := h.run(t, nil, "--plan", planJSON(t, p), "--allow-non-tmpfs")
	var fe *fetch.Error
	if !errors.As(err, &fe) || len(fe.Failures) != 2 {
		t.Fatalf("Run = %v, want two failed secrets", err)
	}
	if got := names(t, dir); len(got) != 0 {
		t.Errorf("directory holds %q after a failed run, want nothing", got)
	}
	failed := withMsg(lines, "failed to fetch secret")
	var got []string
	for _, l := range failed {
		got = append(got, fmt.Sprintf("%v %v %v %v", l["id"], l["file"], l["code"], l["attempts"]))
	}
	if want := []string{"app/s03 s03 AccessDeniedException 1", "app/s17 s17 DecryptionFailure 1"}; !slices.Equal(got, want) {
		t.Errorf("failure lines = %q, want %q", got, want)
	}
	msg, _ := os.ReadFile(h.termLog)
	want := "secretfetch: 2 of 20 secrets failed, no files written:\n" +
		"app/s03 (file s03): AccessDeniedException after 1 attempt(s)\n" +
		"app/s17 (file s17): DecryptionFailure after 1 attempt(s)"
	if string(msg) != want {
		t.Errorf("termination message =\n%s\nwant\n%s", msg, want)
	}
}

func TestRunPatternMismatch(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	h.secret(t, "app/token") // "value-of-app/token-CANARY-..." has '/' and '-'
	p := planJSON(t, &plan.Plan{Version: 1, Dir: dir, Region: "us-east-1", Secrets: []plan.Secret{
		{File: "token", ID: "app/token", Pattern: "[A-Za-z0-9]+"},
	}})
	termLog := filepath.Join(t.TempDir(), "explicit-log")
	err, lines := h.run(t, nil, "--plan", p, "--allow-non-tmpfs", "--termination-log", termLog)
	var se *fetch.SecretError
	if !errors.As(err, &se) || se.Code != fetch.CodePatternMismatch {
		t.Fatalf("Run = %v, want %s", err, fetch.CodePatternMismatch)
	}
	msg, err := os.ReadFile(termLog)
	if err != nil {
		t.Fatalf("the explicit --termination-log was not written: %v", err)
	}
	if !strings.Contains(string(msg), "app/token (file token): PatternMismatch") {
		t.Errorf("termination message = %q", msg)
	}
	for _, b := range [][]byte{msg, fmt.Append(nil, lines)} {
		if bytes.Contains(b, []byte(canary)) || bytes.Contains(b, []byte("value-of")) {
			t.Error("the value shows up in the output")
		}
	}
	if got := names(t, dir); len(got) != 0 {
		t.Errorf("directory holds %q", got)
	}
}

func TestRunRefusesSymlink(t *testing.T) {
	h := newHarness(t)
	h.secret(t, "app/a")
	h.secret(t, "app/b")
	dir := t.TempDir()
	target := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.WriteFile(target, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, "b")); err != nil {
		t.Fatal(err)
	}
	err, _ := h.run(t, nil, "--dir", dir, "--secret", "a=app/a", "--secret", "b=app/b", "--region", "us-east-1", "--allow-non-tmpfs")
	if !errors.Is(err, tmpfs.ErrSymlink) {
		t.Fatalf("Run = %v, want ErrSymlink", err)
	}
	if got := names(t, dir); !slices.Equal(got, []string{"b"}) {
		t.Errorf("directory holds %q, want only the symlink", got)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Error("the symlink's target was written")
	}
}

func TestRunRerunAfterFailure(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	want := map[string][]byte{"a": h.secret(t, "app/a"), "b": h.secret(t, "app/b")}
	args := []string{"--dir", dir, "--secret", "a=app/a", "--secret", "b=app/b", "--region", "us-east-1", "--allow-non-tmpfs"}

	// The first attempt fails on b; kubelet restarts the init container
	// on the same emptyDir, where a killed run may also have left a
	// temporary file behind.
	h.fk.InjectFault(smfake.Fault{Operation: "GetSecretValue", SecretID: "app/b", Code: "AccessDeniedException", Count: 1})
	if err, _ := h.run(t, nil, args...); err == nil {
		t.Fatal("the first run succeeded despite the fault")
	}
	if got := names(t, dir); len(got) != 0 {
		t.Fatalf("the failed run left %q", got)
	}
	stale := filepath.Join(dir, tmpfs.TempPrefix+"a-0123456789abcdef")
	if err := os.WriteFile(stale, []byte("half"), 0o400); err != nil {
		t.Fatal(err)
	}
	for run := range 2 { // and a run over a complete earlier result
		if err, _ := h.run(t, nil, args...); err != nil {
			t.Fatalf("run %d: %v", run+2, err)
		}
		// The layout: one data directory, ..data, and a link per file.
		if got := names(t, dir); len(got) != 4 || !strings.HasPrefix(got[0], "..20") || !slices.Equal(got[1:], []string{tmpfs.DataLink, "a", "b"}) {
			t.Errorf("run %d: directory holds %q, want one data directory, %s, a and b", run+2, got, tmpfs.DataLink)
		}
		for name, v := range want {
			if got, _ := os.ReadFile(filepath.Join(dir, name)); !bytes.Equal(got, v) {
				t.Errorf("run %d: %s differs", run+2, name)
			}
		}
	}
}

func TestRunDeadline(t *testing.T) {
	h := newHarness(t)
	h.secret(t, "app/db")
	dir := t.TempDir()
	h.fk.InjectFault(smfake.Fault{Operation: "GetSecretValue", Code: "ThrottlingException"})
	termLog := filepath.Join(t.TempDir(), "log")
	err, lines := h.run(t, nil, "--dir", dir, "--secret", "db=app/db", "--region", "us-east-1",
		"--allow-non-tmpfs", "--timeout", "300ms", "--termination-log", termLog)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run = %v, want DeadlineExceeded", err)
	}
	msg, _ := os.ReadFile(termLog)
	m := regexp.MustCompile(`app/db \(file db\): ThrottlingException after (\d+) attempt\(s\), deadline exceeded`).FindSubmatch(msg)
	if m == nil {
		t.Fatalf("termination message %q does not say how many attempts were throttled before the deadline", msg)
	}
	attempts, _ := strconv.Atoi(string(m[1]))
	// The deadline may cut the last attempt short before its request
	// reaches the fake, which then counts one fewer.
	if n := h.fk.Count("GetSecretValue", "app/db"); attempts != n && attempts != n+1 {
		t.Errorf("termination message counts %d attempts; the fake answered %d", attempts, n)
	}
	// A retry line comes before each wait; the last wait may be the one the
	// deadline cut short.
	if retries := len(withMsg(lines, "retrying")); retries != attempts-1 && retries != attempts {
		t.Errorf("%d retry lines for %d attempts", retries, attempts)
	}
	if got := names(t, dir); len(got) != 0 {
		t.Errorf("directory holds %q", got)
	}
}

func TestRunPlanSources(t *testing.T) {
	h := newHarness(t)
	want := h.secret(t, "app/db")
	dir := t.TempDir()
	p := planJSON(t, &plan.Plan{Version: 1, Dir: dir, Region: "us-east-1", Secrets: []plan.Secret{{File: "db", ID: "app/db"}}})
	file := filepath.Join(t.TempDir(), "plan.json")
	if err := os.WriteFile(file, []byte(p), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(p, `"file":"db"`, `"file":"db","mode":"0644"`, 1)
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string // "" means success
	}{
		{name: "inline --plan", args: []string{"--plan", p}},
		{name: "inline --plan with space", args: []string{"--plan", "  " + p}},
		{name: "--plan file", args: []string{"--plan", file}},
		{name: "env", env: map[string]string{plan.EnvVar: p}},
		{name: "short form", args: []string{"--dir", dir, "--secret", "db=app/db", "--region", "us-east-1"}},
		{name: "nothing", wantErr: "no plan"},
		{name: "env and --plan", env: map[string]string{plan.EnvVar: p}, args: []string{"--plan", p}, wantErr: "given twice"},
		{name: "--plan and --secret", args: []string{"--plan", p, "--secret", "x=y"}, wantErr: "given twice"},
		{name: "--dir alone", args: []string{"--dir", dir}, wantErr: "need at least one --secret"},
		{name: "missing plan file", args: []string{"--plan", file + ".missing"}, wantErr: "no such file"},
		{name: "bad mode names the field", args: []string{"--plan", bad}, wantErr: "secrets[0].mode"},
		{name: "bad env plan", env: map[string]string{plan.EnvVar: `{"version":1}`}, wantErr: "$SECRETFETCH_PLAN: invalid plan: dir:"},
		{name: "bad short name", args: []string{"--dir", dir, "--secret", "../x=app/db"}, wantErr: "secrets[0].file"},
		{name: "secret without id", args: []string{"--secret", "db="}, wantErr: "want NAME=ID"},
		{name: "relative dir", args: []string{"--dir", "rel", "--secret", "db=app/db"}, wantErr: "dir:"},
		{name: "zero concurrency", args: []string{"--plan", p, "--concurrency", "0"}, wantErr: "--concurrency"},
		{name: "negative timeout", args: []string{"--plan", p, "--timeout", "-1s"}, wantErr: "--timeout"},
		{name: "unknown flag", args: []string{"--plan", p, "--region-typo", "x"}, wantErr: "flag provided but not defined"},
		{name: "positional", args: []string{"--plan", p, "extra"}, wantErr: "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(filepath.Join(dir, "db"))
			err, _ := h.run(t, tt.env, append(tt.args, "--allow-non-tmpfs")...)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got, _ := os.ReadFile(filepath.Join(dir, "db")); !bytes.Equal(got, want) {
					t.Error("db was not written")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Run = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
	if err, _ := h.run(t, nil, "-h"); err != nil {
		t.Errorf("-h: %v", err)
	}
}

func TestTerminationMessage(t *testing.T) {
	t.Run("plain error", func(t *testing.T) {
		if got := TerminationMessage(errors.New("boom")); got != "secretfetch: boom" {
			t.Errorf("got %q", got)
		}
	})
	t.Run("long error is cut on a character boundary", func(t *testing.T) {
		got := TerminationMessage(errors.New(strings.Repeat("é", 3000)))
		if len(got) > MaxTerminationMessage || !utf8.ValidString(got) || len(got) < MaxTerminationMessage-1 {
			t.Errorf("%d bytes, valid UTF-8 %v", len(got), utf8.ValidString(got))
		}
	})
	t.Run("many failures fit in the cap", func(t *testing.T) {
		fe := &fetch.Error{Total: 500}
		for i := range 300 {
			id := fmt.Sprintf("arn:aws:secretsmanager:us-east-1:111122223333:secret:team/service/%03d-AbCdEf", i)
			fe.Failures = append(fe.Failures, &fetch.SecretError{ID: id, File: fmt.Sprintf("f%03d", i), Code: "AccessDeniedException", Attempts: 1})
		}
		got := TerminationMessage(fmt.Errorf("wrapped: %w", fe))
		if len(got) > MaxTerminationMessage {
			t.Fatalf("%d bytes, over kubelet's cap of %d", len(got), MaxTerminationMessage)
		}
		if !strings.HasPrefix(got, "secretfetch: 300 of 500 secrets failed") || !strings.Contains(got, "team/service/000-AbCdEf (file f000): AccessDeniedException") {
			t.Errorf("message starts %q", got[:200])
		}
		lines := strings.Split(got, "\n")
		shown := len(lines) - 2 // the header and the "and N more" line
		if want := fmt.Sprintf("... and %d more", 300-shown); lines[len(lines)-1] != want {
			t.Errorf("last line %q, want %q", lines[len(lines)-1], want)
		}
	})
}

// TestRunHostileAnswers: what a broken or hostile endpoint sends in an error
// answer reaches the logs only cut short, and the termination message
// (which kubelet copies into the pod's status) not at all: a code that is
// not shaped like an AWS code is replaced by a fixed word, and the
// message is never written.
func TestRunHostileAnswers(t *testing.T) {
	const marker = "MESSAGE-MARKER-51d0"
	longMessage := marker + strings.Repeat(" and on", 30_000) // about 200 KB
	tests := []struct {
		name     string
		fault    smfake.Fault
		wantCode string
		wantOK   bool
	}{
		{name: "long message on every retry",
			fault:  smfake.Fault{Operation: "GetSecretValue", Code: "ThrottlingException", Message: longMessage, Count: 3},
			wantOK: true},
		{name: "forged line in the code",
			fault:    smfake.Fault{Operation: "GetSecretValue", Code: "AccessDenied\nsecretfetch: all 1 secrets written", Message: marker},
			wantCode: fetch.CodeMalformed},
		{name: "value in the code",
			fault:    smfake.Fault{Operation: "GetSecretValue", Code: "password=hunter2-" + marker, Message: marker},
			wantCode: fetch.CodeMalformed},
		{name: "a real code",
			fault:    smfake.Fault{Operation: "GetSecretValue", Code: "AccessDeniedException", Message: marker},
			wantCode: "AccessDeniedException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			if err := os.WriteFile(h.termLog, nil, 0o644); err != nil { // as kubelet does
				t.Fatal(err)
			}
			dir := t.TempDir()
			h.secret(t, "app/db")
			h.fk.InjectFault(tt.fault)
			var stderr bytes.Buffer
			err := Run(context.Background(), []string{"--dir", dir, "--secret", "db=app/db", "--region", "us-east-1", "--allow-non-tmpfs"},
				func(string) string { return "" }, &stderr, h.opts...)
			for i, line := range bytes.Split(stderr.Bytes(), []byte("\n")) {
				if len(line) > 8<<10 {
					t.Errorf("log line %d is %d bytes, want at most a few KiB", i, len(line))
				}
			}
			if tt.wantOK {
				if err != nil {
					t.Fatalf("Run: %v", fetch.Truncate(err.Error(), 500))
				}
				if !bytes.Contains(stderr.Bytes(), []byte(marker)) {
					t.Error("the retry lines do not show the start of the service's message")
				}
				return
			}
			if err == nil {
				t.Fatal("Run succeeded, want a failure")
			}
			msg, _ := os.ReadFile(h.termLog)
			want := "secretfetch: 1 of 1 secrets failed, no files written:\napp/db (file db): " + tt.wantCode + " after 1 attempt(s)"
			if string(msg) != want {
				t.Errorf("termination message =\n%q\nwant\n%q", msg, want)
			}
		})
	}
}

func TestTerminationMessageHostile(t *testing.T) {
	t.Run("the only failure is named even when its line is too long", func(t *testing.T) {
		id := "arn:aws:secretsmanager:us-east-1:111122223333:secret:" + strings.Repeat("a", 5000)
		fe := &fetch.Error{Total: 1, Failures: []*fetch.SecretError{{ID: id, File: "db", Code: "AccessDeniedException", Attempts: 1}}}
		got := TerminationMessage(fe)
		if len(got) > MaxTerminationMessage {
			t.Fatalf("%d bytes, over kubelet's cap of %d", len(got), MaxTerminationMessage)
		}
		if !strings.Contains(got, "\narn:aws:secretsmanager:us-east-1:111122223333:secret:aaaa") || strings.Contains(got, "more") {
			t.Errorf("message %q does not name the secret", fetch.Truncate(got, 200))
		}
	})
	t.Run("the first of several is named when its line is too long", func(t *testing.T) {
		fe := &fetch.Error{Total: 2, Failures: []*fetch.SecretError{
			{ID: strings.Repeat("b", 5000), File: "a", Code: "AccessDeniedException", Attempts: 1},
			{ID: "app/other", File: "b", Code: "AccessDeniedException", Attempts: 1},
		}}
		got := TerminationMessage(fe)
		lines := strings.Split(got, "\n")
		if len(got) > MaxTerminationMessage || len(lines) != 3 || !strings.HasPrefix(lines[1], "bbbb") || lines[2] != "... and 1 more" {
			t.Errorf("%d bytes, lines %q", len(got), fetch.Truncate(fmt.Sprint(lines), 300))
		}
	})
	t.Run("no text of the error, and only codes shaped like codes", func(t *testing.T) {
		fe := &fetch.Error{Total: 2, Failures: []*fetch.SecretError{
			{ID: "app/a", File: "a", Code: "Throttling\nforged line", Attempts: 3, Err: errors.New("MESSAGE-FROM-ENDPOINT " + canary)},
			{ID: "app/b", File: "b", Code: "DecryptionFailure", Attempts: 1, Err: errors.New("MESSAGE-FROM-ENDPOINT")},
		}}
		got := TerminationMessage(fmt.Errorf("run: %w", fe))
		want := "secretfetch: 2 of 2 secrets failed, no files written:\n" +
			"app/a (file a): " + fetch.CodeMalformed + " after 3 attempt(s)\n" +
			"app/b (file b): DecryptionFailure after 1 attempt(s)"
		if got != want {
			t.Errorf("got\n%q\nwant\n%q", got, want)
		}
	})
}
