package fetch

// These tests put the real SDK client in front of endpoints that misbehave:
// answers larger than AWS ever sends, connections cut at every point of an
// answer, and error codes that are not codes.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/secretfetch/secretfetch/internal/plan"
	"github.com/secretfetch/secretfetch/internal/smfake"
	"github.com/secretfetch/secretfetch/internal/smfake/smfaketest"
)

// hostileValue is in every oversized answer; it must not show in an error.
const hostileValue = "HOSTILE-VALUE-3c2b1a"

// streamJSON answers status with a JSON document `{"<member>":"…"}` whose
// string is n bytes of filler, streamed without a Content-Length so that
// only the client's cap can stop it. It counts the bytes it managed to send.
func streamJSON(status int, member string, n int, sent *atomic.Int64) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(status)
		head := fmt.Sprintf(`{"__type":"ThrottlingException","ARN":"arn:aws:secretsmanager:us-east-1:111122223333:secret:app/db-AbCdEf","Name":"app/db","VersionId":"EXAMPLE1-90ab-cdef-fedc-ba987EXAMPLE","%s":"`, member)
		if _, err := io.WriteString(w, head); err != nil {
			return
		}
		chunk := []byte(strings.Repeat(hostileValue, 4096/len(hostileValue)+1)[:4096])
		for left := n; left > 0; left -= len(chunk) {
			k, err := w.Write(chunk[:min(len(chunk), left)])
			sent.Add(int64(k))
			if err != nil {
				return
			}
		}
		io.WriteString(w, `"}`)
	}
}

// TestResponseBodyCapped: an answer or an error answer larger than any AWS
// sends fails its read at MaxResponseBytes, is not retried, and leaves an
// error of bounded text that shows none of it.
func TestResponseBodyCapped(t *testing.T) {
	const huge = 100 << 20
	tests := []struct {
		name    string
		handler func(sent *atomic.Int64) http.Handler
	}{
		{"SecretString of 100 MB", func(sent *atomic.Int64) http.Handler {
			return streamJSON(http.StatusOK, "SecretString", huge, sent)
		}},
		{"error message of 100 MB", func(sent *atomic.Int64) http.Handler {
			return streamJSON(http.StatusBadRequest, "Message", huge, sent)
		}},
		{"Content-Length of 100 MB", func(sent *atomic.Int64) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Length", fmt.Sprint(huge))
				w.WriteHeader(http.StatusOK)
				// Send a little, then stall until the client goes away.
				n, _ := io.WriteString(w, `{"SecretString":"`+hostileValue)
				sent.Add(int64(n))
				w.(http.Flusher).Flush()
				<-r.Context().Done()
			})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			smfaketest.IsolateEnv(t)
			var sent, calls atomic.Int64
			h := tt.handler(&sent)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				h.ServeHTTP(w, r)
			}))
			defer srv.Close()
			o := Options{Clients: fakeClients(t, srv.URL, "us-east-1"), NewBackOff: fastBackOff}
			o.OnRetry = retriedOnlyConnections(t)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := Fetch(ctx, onePlan(plan.Secret{File: "db", ID: "app/db"}), o)
			var se *SecretError
			if !errors.As(err, &se) {
				t.Fatalf("Fetch error = %v, want a *SecretError", Truncate(fmt.Sprint(err), 300))
			}
			if se.Code != CodeResponseTooLarge || int64(se.Attempts) != calls.Load() {
				t.Errorf("code %s after %d attempt(s) and %d call(s); want %s, one call per attempt", se.Code, se.Attempts, calls.Load(), CodeResponseTooLarge)
			}
			if !errors.Is(err, ErrResponseTooLarge) {
				t.Errorf("error %q does not wrap ErrResponseTooLarge", Truncate(err.Error(), 300))
			}
			msg := err.Error()
			if len(msg) > 2*MaxErrorText {
				t.Errorf("error text is %d bytes, want at most about %d", len(msg), MaxErrorText)
			}
			if strings.Contains(msg, hostileValue) && tt.name != "error message of 100 MB" {
				t.Error("the error shows the value")
			}
			// The server may get ahead of the client by socket buffers, but
			// nowhere near the whole body.
			if s := sent.Load(); s > 16<<20 {
				t.Errorf("the server sent %d MB before the client stopped reading", s>>20)
			}
		})
	}
}

// retriedOnlyConnections is an OnRetry that fails the test on a retry of
// anything but a dropped connection. Go's transport now and then closes a
// connection under the reader of a large answer (aws/aws-sdk-go-v2#2737),
// and that attempt is rightly retried; nothing else in these tests may be.
func retriedOnlyConnections(t *testing.T) func(Retry) {
	return func(r Retry) {
		if r.Code != CodeConnection {
			t.Errorf("retried %s after attempt %d; only a dropped connection may be retried here", r.Code, r.Attempt)
		}
	}
}

// TestValueOverAWSLimit: a value over Secrets Manager's 64 KiB comes from
// something posing as it, and is refused without being shown; a value of
// exactly 64 KiB is fine.
func TestValueOverAWSLimit(t *testing.T) {
	for _, tt := range []struct {
		name    string
		n       int
		tooLarg bool
	}{
		{"exactly 64 KiB", MaxValueBytes, false},
		{"64 KiB and one byte", MaxValueBytes + 1, true},
		{"400 KiB", 400 << 10, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			smfaketest.IsolateEnv(t)
			var sent atomic.Int64
			srv := httptest.NewServer(streamJSON(http.StatusOK, "SecretString", tt.n, &sent))
			defer srv.Close()
			o := Options{Clients: fakeClients(t, srv.URL, "us-east-1"), NewBackOff: fastBackOff}
			o.OnRetry = retriedOnlyConnections(t)
			res, err := Fetch(context.Background(), onePlan(plan.Secret{File: "db", ID: "app/db"}), o)
			if !tt.tooLarg {
				if err != nil {
					t.Fatalf("Fetch: %v", Truncate(err.Error(), 300))
				}
				if len(res[0].Value) != tt.n {
					t.Errorf("value of %d bytes, want %d", len(res[0].Value), tt.n)
				}
				return
			}
			var se *SecretError
			if !errors.As(err, &se) || se.Code != CodeValueTooLarge {
				t.Fatalf("Fetch error = %v, want %s", Truncate(fmt.Sprint(err), 300), CodeValueTooLarge)
			}
			if strings.Contains(err.Error(), hostileValue) || strings.Contains(err.Error(), fmt.Sprint(tt.n)) {
				t.Error("the error shows the value or its size")
			}
		})
	}
}

// TestCredentialResponsesCapped: the STS answer that IRSA reads and the
// answer of the Pod Identity agent are capped too, through the config that
// Fetch loads itself.
func TestCredentialResponsesCapped(t *testing.T) {
	huge := func(w http.ResponseWriter, r *http.Request, prefix string) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, prefix)
		chunk := []byte(strings.Repeat("x", 4096))
		for range (100 << 20) / len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}
	t.Run("STS AssumeRoleWithWebIdentity", func(t *testing.T) {
		fk, url := fakeServer(t)
		create(t, fk, "app/db", smfake.Value{String: "s3cret"})
		sts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			huge(w, r, "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>")
		}))
		defer sts.Close()
		token := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(token, []byte("header.payload.signature"), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("AWS_ROLE_ARN", "arn:aws:iam::111122223333:role/checkout")
		t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", token)
		t.Setenv("AWS_ENDPOINT_URL_STS", sts.URL)
		t.Setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", url)
		t.Setenv("AWS_REGION", "us-east-1")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := Fetch(ctx, onePlan(plan.Secret{File: "db", ID: "app/db"}), Options{NewBackOff: fastBackOff})
		if !errors.Is(err, ErrResponseTooLarge) || Code(errors.Unwrap(err.(*Error).Failures[0])) != CodeResponseTooLarge {
			t.Fatalf("Fetch error = %v, want %s", Truncate(fmt.Sprint(err), 500), CodeResponseTooLarge)
		}
		if n := fk.Count(opGet, ""); n != 0 {
			t.Errorf("Secrets Manager got %d requests, want 0", n)
		}
	})
	t.Run("Pod Identity agent", func(t *testing.T) {
		fk, url := fakeServer(t)
		create(t, fk, "app/db", smfake.Value{String: "s3cret"})
		agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			huge(w, r, `{"AccessKeyId":"`)
		}))
		defer agent.Close()
		tokenFile := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(tokenFile, []byte("pod-identity-token"), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", agent.URL+"/v1/credentials")
		t.Setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", tokenFile)
		t.Setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", url)
		t.Setenv("AWS_REGION", "us-east-1")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := Fetch(ctx, onePlan(plan.Secret{File: "db", ID: "app/db"}), Options{NewBackOff: fastBackOff})
		if !errors.Is(err, ErrResponseTooLarge) {
			t.Fatalf("Fetch error = %v, want %s", Truncate(fmt.Sprint(err), 500), CodeResponseTooLarge)
		}
		if n := fk.Count(opGet, ""); n != 0 {
			t.Errorf("Secrets Manager got %d requests, want 0", n)
		}
	})
}

// cutAt says where a hostile server cuts the first answer.
type cutAt struct {
	name   string
	prefix string        // what it sends before it closes the connection
	stall  time.Duration // how long it waits before closing
}

// TestDroppedConnectionRetried: a connection that fails at any point of
// the first answer (before the status, after the status line, in the
// headers, in the body of a 200 or of a 400) is retried, and the next
// attempt gets the secret.
func TestDroppedConnectionRetried(t *testing.T) {
	body := `{"ARN":"arn:aws:secretsmanager:us-east-1:111122223333:secret:app/db-AbCdEf","Name":"app/db","SecretString":"s3cret","VersionId":"EXAMPLE1-90ab-cdef-fedc-ba987EXAMPLE"}`
	errBody := `{"__type":"AccessDeniedException","Message":"User is not authorized"}`
	header := func(status string, n int) string {
		return "HTTP/1.1 " + status + "\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: " + fmt.Sprint(n) + "\r\n\r\n"
	}
	cuts := []cutAt{
		{name: "before the status"},
		{name: "after the status line", prefix: "HTTP/1.1 200 OK\r\n"},
		{name: "in the headers", prefix: "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-js"},
		{name: "in the body of a 200", prefix: header("200 OK", len(body)) + body[:40]},
		{name: "in the body of a 400", prefix: header("400 Bad Request", len(errBody)) + errBody[:20]},
		{name: "in the body of a 200, reset", prefix: header("200 OK", len(body)) + body[:40], stall: -1},
	}
	for _, cut := range cuts {
		t.Run(cut.name, func(t *testing.T) {
			o := firstAnswer(t, func(w http.ResponseWriter, r *http.Request) {
				conn, buf, err := w.(http.Hijacker).Hijack()
				if err != nil {
					t.Error(err)
					return
				}
				defer conn.Close()
				buf.WriteString(cut.prefix)
				buf.Flush()
				if cut.stall < 0 {
					// An RST rather than a FIN: the peer's reads fail with
					// ECONNRESET.
					conn.(*net.TCPConn).SetLinger(0)
				}
			})
			o.OnRetry = retriedOnlyConnections(t)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			res, err := Fetch(ctx, onePlan(plan.Secret{File: "db", ID: "app/db"}), o)
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			// Two attempts: the cut one and the good one (more only if the
			// transport's own race cut another, see retriedOnlyConnections).
			if res[0].Attempts < 2 || !bytes.Equal(res[0].Value, []byte("s3cret")) {
				t.Errorf("value %s after %d attempts; want the secret after 2", digest(res[0].Value), res[0].Attempts)
			}
		})
	}
}

// TestStalledBodyRetried: an answer whose body stops coming is cut by the
// attempt timeout, and that is retried like any timeout, although the
// error carries the status 200 that came before it.
func TestStalledBodyRetried(t *testing.T) {
	o := firstAnswer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Header().Set("Content-Length", "200")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, `{"SecretString":"s3`)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	o.AttemptTimeout = 300 * time.Millisecond
	res, err := Fetch(context.Background(), onePlan(plan.Secret{File: "db", ID: "app/db"}), o)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if res[0].Attempts < 2 {
		t.Errorf("%d attempts, want 2: a timed-out one, then success", res[0].Attempts)
	}
}

// firstAnswer returns the options of a Fetch whose first request is
// answered by first, once its body is read, and every later one by a fake
// that holds app/db.
func firstAnswer(t *testing.T, first http.HandlerFunc) Options {
	t.Helper()
	fk, _ := fakeServer(t)
	create(t, fk, "app/db", smfake.Value{String: "s3cret"})
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) > 1 {
			fk.ServeHTTP(w, r)
			return
		}
		io.Copy(io.Discard, r.Body)
		first(w, r)
	}))
	t.Cleanup(srv.Close)
	return Options{Clients: fakeClients(t, srv.URL, fk.Region()), NewBackOff: fastBackOff}
}

// bodyError builds the error the SDK returns when the connection fails
// while the body of an answer with the given status is read: the status is
// there, the API error is not.
func bodyError(status int, cause error) error {
	return &smithy.OperationError{
		ServiceID:     "Secrets Manager",
		OperationName: "GetSecretValue",
		Err: &awshttp.ResponseError{
			ResponseError: &smithyhttp.ResponseError{
				Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
				Err:      &smithy.DeserializationError{Err: fmt.Errorf("failed to copy error response body, %w", cause)},
			},
		},
	}
}

// TestCodeAndRetryableAgree: whatever Code calls an error, Retryable
// decides the same way: every connection error and timeout is retried, and
// nothing with a permanent code is.
func TestCodeAndRetryableAgree(t *testing.T) {
	closed := &net.OpError{Op: "read", Net: "tcp", Err: net.ErrClosed}
	reset := &net.OpError{Op: "read", Net: "tcp", Err: &os.SyscallError{Syscall: "read", Err: syscall.ECONNRESET}}
	errs := map[string]error{
		"closed in a 200 body":            bodyError(200, closed),
		"closed in a 400 body":            bodyError(400, closed),
		"reset in a 200 body":             bodyError(200, reset),
		"unexpected EOF in a 200 body":    bodyError(200, io.ErrUnexpectedEOF),
		"unexpected EOF in a 500 body":    bodyError(500, io.ErrUnexpectedEOF),
		"timeout in a 200 body":           bodyError(200, context.DeadlineExceeded),
		"too large in a 200 body":         bodyError(200, ErrResponseTooLarge),
		"too large in a 503 body":         bodyError(503, ErrResponseTooLarge),
		"canceled in a 200 body":          bodyError(200, context.Canceled),
		"garbled 200 body":                bodyError(200, errors.New("invalid character 'x'")),
		"garbled 503 body":                bodyError(503, errors.New("invalid character 'x'")),
		"before the status":               transportError(io.EOF),
		"refused":                         transportError(&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}),
		"throttled":                       apiError("ThrottlingException", 400),
		"denied":                          apiError("AccessDeniedException", 400),
		"denied with a 503":               apiError("AccessDeniedException", 503),
		"malformed code with a 400":       apiError("Throttling\nsecretfetch: forged", 400),
		"malformed code with a 503":       apiError("<html>", 503),
		"unknown code with a 400":         apiError("SomethingNew", 400),
		"unknown code with a 503":         apiError("SomethingNew", 503),
		"plain error":                     errors.New("odd"),
		"closed, wrapped by a credential": fmt.Errorf("get identity: %w", transportError(closed)),
	}
	mustRetry := map[string]bool{CodeConnection: true, CodeTimeout: true, "ThrottlingException": true}
	never := map[string]bool{CodeNoCredentials: true, CodeCanceled: true, CodeResponseTooLarge: true, CodeUnknown: false}
	for name, err := range errs {
		code, retry := Code(err), Retryable(err)
		if mustRetry[code] && !retry {
			t.Errorf("%s: Code says %s, but Retryable says no", name, code)
		}
		if (never[code] || isPermanentCode(code)) && retry {
			t.Errorf("%s: Code says %s, but Retryable says yes", name, code)
		}
		if !ValidCode(code) {
			t.Errorf("%s: Code %q is not shaped like a code", name, code)
		}
	}
	// The cuts that the SDK reports with a status are connection errors,
	// and retried.
	for _, name := range []string{"closed in a 200 body", "closed in a 400 body", "reset in a 200 body", "unexpected EOF in a 200 body"} {
		if c, r := Code(errs[name]), Retryable(errs[name]); c != CodeConnection || !r {
			t.Errorf("%s: Code %s, Retryable %v; want %s and true", name, c, r, CodeConnection)
		}
	}
}

func TestValidCode(t *testing.T) {
	for code, want := range map[string]bool{
		"ThrottlingException":                     true,
		"AccessDenied":                            true,
		"InternalFailure":                         true,
		"AWS.SimpleQueueService.NonExistentQueue": true,
		"IDPCommunicationError":                   true,
		"Request_Limit2":                          true,
		strings.Repeat("A", 64):                   true,
		strings.Repeat("A", 65):                   false,
		"":                                        false,
		"1Exception":                              false,
		"_Exception":                              false,
		"Throttling\nsecretfetch: all is well":    false,
		"Access Denied":                           false,
		"code:with:colons":                        false,
		`Quote"d`:                                 false,
		"Ünïcode":                                 false,
		"value=" + hostileValue:                   false,
		"com.amazonaws.secretsmanager#Throttling": false,
	} {
		if got := ValidCode(code); got != want {
			t.Errorf("ValidCode(%q) = %v, want %v", code, got, want)
		}
	}
}

func TestErrorTextBounded(t *testing.T) {
	long := errors.New(strings.Repeat("é", 10_000))
	got := ErrorText(long)
	if len(got) > MaxErrorText || !strings.HasSuffix(got, "[truncated]") || !utf8.ValidString(got) {
		t.Errorf("ErrorText: %d bytes, ends %q", len(got), got[max(0, len(got)-20):])
	}
	se := &SecretError{ID: "app/db", File: "db", Code: "ThrottlingException", Attempts: 3, Err: long}
	if n := len(se.Error()); n > MaxErrorText+200 {
		t.Errorf("SecretError text is %d bytes", n)
	}
	if got := ErrorText(errors.New("short")); got != "short" {
		t.Errorf("ErrorText(short) = %q", got)
	}
}

// TestDefaultScheduleWaitsLongerAfterThrottling: with the default
// schedules, a throttled attempt is followed by a wait of about a second,
// and any other retried failure by one of about 200 ms. (The waits are
// what the schedule says, reported before they are waited; nothing here
// measures a clock.)
func TestDefaultScheduleWaitsLongerAfterThrottling(t *testing.T) {
	for _, tt := range []struct {
		code     string
		status   int
		min, max time.Duration
	}{
		{"ThrottlingException", 400, 500 * time.Millisecond, 1500 * time.Millisecond},
		{"InternalServiceError", 500, 100 * time.Millisecond, 300 * time.Millisecond},
	} {
		t.Run(tt.code, func(t *testing.T) {
			s := newStub()
			s.set("app/db", fail(tt.code, tt.status), str("v"))
			o := stubOptions(s)
			o.NewBackOff = nil // the defaults
			var waits []time.Duration
			o.OnRetry = func(r Retry) { waits = append(waits, r.Wait) }
			if _, err := Fetch(context.Background(), onePlan(plan.Secret{File: "db", ID: "app/db"}), o); err != nil {
				t.Fatal(err)
			}
			if len(waits) != 1 || waits[0] < tt.min || waits[0] > tt.max {
				t.Errorf("waits %v, want one between %v and %v", waits, tt.min, tt.max)
			}
		})
	}
}
