package fetch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/cenkalti/backoff/v4"

	"github.com/secretfetch/secretfetch/internal/plan"
)

// apiError builds an error shaped like the one the SDK returns for an AWS
// error answer: an OperationError around an HTTP ResponseError around the
// APIError.
func apiError(code string, status int) error {
	return &smithy.OperationError{
		ServiceID:     "Secrets Manager",
		OperationName: "GetSecretValue",
		Err: &awshttp.ResponseError{
			ResponseError: &smithyhttp.ResponseError{
				Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
				Err:      &smithy.GenericAPIError{Code: code, Message: "message from the service"},
			},
			RequestID: "req-1",
		},
	}
}

// transportError builds an error shaped like the SDK's when no answer came:
// the SDK wraps it in a ResponseError with status 0.
func transportError(err error) error {
	return &smithy.OperationError{
		ServiceID:     "Secrets Manager",
		OperationName: "GetSecretValue",
		Err: &awshttp.ResponseError{
			ResponseError: &smithyhttp.ResponseError{
				Response: &smithyhttp.Response{Response: &http.Response{}},
				Err:      &smithyhttp.RequestSendError{Err: err},
			},
		},
	}
}

func TestRetryableAndCode(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: &net.AddrError{Err: "connection refused"}}
	tests := []struct {
		name      string
		err       error
		retryable bool
		code      string
	}{
		{"ThrottlingException", apiError("ThrottlingException", 400), true, "ThrottlingException"},
		{"Throttling", apiError("Throttling", 400), true, "Throttling"},
		{"TooManyRequestsException", apiError("TooManyRequestsException", 429), true, "TooManyRequestsException"},
		{"RequestLimitExceeded", apiError("RequestLimitExceeded", 400), true, "RequestLimitExceeded"},
		{"InternalServiceError", apiError("InternalServiceError", 500), true, "InternalServiceError"},
		{"InternalServiceError with a 400", apiError("InternalServiceError", 400), true, "InternalServiceError"},
		{"unknown code with 503", apiError("ServiceUnavailableException", 503), true, "ServiceUnavailableException"},
		{"unknown code with 502", apiError("BadGateway", 502), true, "BadGateway"},
		{"unknown code with 429", apiError("SomethingElse", 429), true, "SomethingElse"},
		{"AccessDeniedException", apiError("AccessDeniedException", 400), false, "AccessDeniedException"},
		{"ResourceNotFoundException", apiError("ResourceNotFoundException", 400), false, "ResourceNotFoundException"},
		{"DecryptionFailure", apiError("DecryptionFailure", 400), false, "DecryptionFailure"},
		{"InvalidRequestException", apiError("InvalidRequestException", 400), false, "InvalidRequestException"},
		{"InvalidParameterException", apiError("InvalidParameterException", 400), false, "InvalidParameterException"},
		{"AccessDeniedException with a 500", apiError("AccessDeniedException", 500), false, "AccessDeniedException"},
		{"UnrecognizedClientException", apiError("UnrecognizedClientException", 400), false, "UnrecognizedClientException"},
		{"unknown code with 400", apiError("SomethingNew", 400), false, "SomethingNew"},
		{"connection refused", transportError(refused), true, CodeConnection},
		{"ECONNRESET", transportError(&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}), true, CodeConnection},
		{"unexpected EOF", transportError(io.ErrUnexpectedEOF), true, CodeConnection},
		{"attempt timeout", transportError(context.DeadlineExceeded), true, CodeTimeout},
		{"net timeout", transportError(&net.DNSError{IsTimeout: true}), true, CodeTimeout},
		{"canceled", transportError(context.Canceled), false, CodeCanceled},
		{"other", errors.New("something odd"), false, CodeUnknown},
		// The shape the SDK returns when the default chain falls through to
		// the node's instance metadata, which the webhook switches off.
		{"no pod credentials", &smithy.OperationError{ServiceID: "Secrets Manager", OperationName: "GetSecretValue",
			Err: fmt.Errorf("get identity: get credentials: failed to refresh cached credentials, no EC2 IMDS role found, %w",
				&smithy.OperationError{ServiceID: "ec2imds", OperationName: "GetMetadata", Err: errors.New("access disabled to EC2 IMDS")})},
			false, CodeNoCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Retryable(tt.err); got != tt.retryable {
				t.Errorf("Retryable = %v, want %v", got, tt.retryable)
			}
			if got := Code(tt.err); got != tt.code {
				t.Errorf("Code = %q, want %q", got, tt.code)
			}
		})
	}
}

// stub is an API that answers from a script per secret ID and records
// every call.
type stub struct {
	mu       sync.Mutex
	script   map[string][]answer // consumed in order; the last one repeats
	calls    map[string]int
	inputs   []secretsmanager.GetSecretValueInput
	inFlight int
	maxIn    int
	delay    time.Duration
	handed   []*secretsmanager.GetSecretValueOutput // every answer given
}

type answer struct {
	out *secretsmanager.GetSecretValueOutput
	err error
}

func newStub() *stub {
	return &stub{script: map[string][]answer{}, calls: map[string]int{}}
}

func (s *stub) set(id string, answers ...answer) { s.script[id] = answers }

func (s *stub) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	id := aws.ToString(in.SecretId)
	s.mu.Lock()
	n := s.calls[id]
	s.calls[id]++
	s.inputs = append(s.inputs, *in)
	s.inFlight++
	s.maxIn = max(s.maxIn, s.inFlight)
	answers := s.script[id]
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}()
	if s.delay > 0 {
		select {
		case <-time.After(s.delay):
		case <-ctx.Done():
		}
		// Both may be ready when this goroutine runs late (a loaded
		// machine): the attempt's deadline wins, as in a real client.
		if err := ctx.Err(); err != nil {
			return nil, transportError(err)
		}
	}
	if len(answers) == 0 {
		return nil, apiError("ResourceNotFoundException", 400)
	}
	a := answers[min(n, len(answers)-1)]
	if a.out != nil {
		// Hand out a fresh copy each call, as the SDK does.
		out := *a.out
		if a.out.SecretBinary != nil {
			out.SecretBinary = bytes.Clone(a.out.SecretBinary)
		}
		s.mu.Lock()
		s.handed = append(s.handed, &out)
		s.mu.Unlock()
		return &out, nil
	}
	return nil, a.err
}

func (s *stub) count(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[id]
}

func str(v string) answer {
	return answer{out: &secretsmanager.GetSecretValueOutput{SecretString: aws.String(v), VersionId: aws.String(fmt.Sprintf("%08d-0000-4000-8000-000000000000", len(v)))}}
}

func bin(v []byte) answer {
	return answer{out: &secretsmanager.GetSecretValueOutput{SecretBinary: v, VersionId: aws.String("00000000-0000-4000-8000-0000000000b1")}}
}

func fail(code string, status int) answer { return answer{err: apiError(code, status)} }

// fastBackOff keeps retry tests quick; the schedule itself is not under test.
func fastBackOff() backoff.BackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(time.Millisecond),
		backoff.WithMaxInterval(5*time.Millisecond),
		backoff.WithMaxElapsedTime(0),
	)
}

func stubOptions(s *stub) Options {
	return Options{
		Clients:    func(string) (API, error) { return s, nil },
		NewBackOff: fastBackOff,
	}
}

func onePlan(secrets ...plan.Secret) *plan.Plan {
	return &plan.Plan{Version: 1, Dir: "/d", Region: "us-east-1", Secrets: secrets}
}

// digest identifies a value in a failure message without showing it.
func digest(b []byte) string { return fmt.Sprintf("%d bytes, sha256 %x", len(b), sha256.Sum256(b)) }

func TestFetchRetriesOnlyWhatCanSucceed(t *testing.T) {
	tests := []struct {
		code      string
		status    int
		retryable bool
	}{
		{"ThrottlingException", 400, true},
		{"InternalServiceError", 500, true},
		{"ServiceUnavailable", 503, true},
		{"AccessDeniedException", 400, false},
		{"ResourceNotFoundException", 400, false},
		{"DecryptionFailure", 400, false},
		{"InvalidRequestException", 400, false},
		{"InvalidParameterException", 400, false},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			s := newStub()
			s.set("app/db", fail(tt.code, tt.status), fail(tt.code, tt.status), str("s3cret"))
			res, err := Fetch(context.Background(), onePlan(plan.Secret{File: "db", ID: "app/db"}), stubOptions(s))
			if tt.retryable {
				if err != nil {
					t.Fatalf("Fetch: %v", err)
				}
				if res[0].Attempts != 3 || s.count("app/db") != 3 {
					t.Errorf("attempts = %d, calls = %d; want 3 and 3", res[0].Attempts, s.count("app/db"))
				}
				if !bytes.Equal(res[0].Value, []byte("s3cret")) {
					t.Errorf("value = %s", digest(res[0].Value))
				}
				return
			}
			var fe *Error
			if !errors.As(err, &fe) || len(fe.Failures) != 1 {
				t.Fatalf("Fetch error = %v, want one failure", err)
			}
			f := fe.Failures[0]
			if f.Code != tt.code || f.Attempts != 1 || f.ID != "app/db" || f.File != "db" {
				t.Errorf("failure = {ID:%s File:%s Code:%s Attempts:%d}, want code %s after 1 attempt", f.ID, f.File, f.Code, f.Attempts, tt.code)
			}
			if s.count("app/db") != 1 {
				t.Errorf("calls = %d, want 1", s.count("app/db"))
			}
			if res != nil {
				t.Errorf("results = %v, want nil on failure", res)
			}
		})
	}
}

func TestFetchDeadlineKeepsLastCode(t *testing.T) {
	s := newStub()
	s.set("app/db", fail("ThrottlingException", 400))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := Fetch(ctx, onePlan(plan.Secret{File: "db", ID: "app/db"}), stubOptions(s))
	var se *SecretError
	if !errors.As(err, &se) {
		t.Fatalf("Fetch error = %v, want a *SecretError", err)
	}
	if se.Code != "ThrottlingException" {
		t.Errorf("code = %q, want ThrottlingException (the last answer, not the deadline)", se.Code)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v does not wrap context.DeadlineExceeded", err)
	}
	if se.Attempts < 2 || se.Attempts != s.count("app/db") {
		t.Errorf("attempts = %d, calls = %d; want several and equal", se.Attempts, s.count("app/db"))
	}
}

func TestFetchAttemptTimeoutIsRetried(t *testing.T) {
	s := newStub()
	s.delay = 50 * time.Millisecond
	s.set("app/db", str("v"))
	o := stubOptions(s)
	o.AttemptTimeout = 10 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	_, err := Fetch(ctx, onePlan(plan.Secret{File: "db", ID: "app/db"}), o)
	var se *SecretError
	if !errors.As(err, &se) {
		t.Fatalf("Fetch error = %v, want a *SecretError", err)
	}
	if se.Code != CodeTimeout || se.Attempts < 2 {
		t.Errorf("code = %q after %d attempts; want %s after several", se.Code, se.Attempts, CodeTimeout)
	}
}

func TestFetchCanceledBeforeStart(t *testing.T) {
	s := newStub()
	s.set("app/db", str("v"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Fetch(ctx, onePlan(plan.Secret{File: "db", ID: "app/db"}), stubOptions(s))
	var se *SecretError
	if !errors.As(err, &se) || se.Code != CodeCanceled {
		t.Fatalf("Fetch error = %v, want code %s", err, CodeCanceled)
	}
}

func TestFetchValues(t *testing.T) {
	const doc = `{"user":"admin","password":"p\u0040ss \"q\"","port":5432,"ratio":1.50,` +
		`"tls":true,"none":null,"db":{"primary":{"host":"db1","opts":{ "b" : 2, "a" : [1, 2] }}},"list":[1,2]}`
	binary := []byte{0x00, 0xff, 0x10, '\n', 0x80}
	tests := []struct {
		name     string
		answer   answer
		key      string
		want     []byte
		wantCode string
		wantMsg  string // must appear in the error
	}{
		{name: "whole string", answer: str(doc), want: []byte(doc)},
		{name: "string key", answer: str(doc), key: "user", want: []byte("admin")},
		{name: "escaped string", answer: str(doc), key: "password", want: []byte(`p@ss "q"`)},
		{name: "number", answer: str(doc), key: "port", want: []byte("5432")},
		{name: "number as written", answer: str(doc), key: "ratio", want: []byte("1.50")},
		{name: "bool", answer: str(doc), key: "tls", want: []byte("true")},
		{name: "null", answer: str(doc), key: "none", want: []byte("null")},
		{name: "nested", answer: str(doc), key: "db.primary.host", want: []byte("db1")},
		{name: "object compact in order", answer: str(doc), key: "db.primary.opts", want: []byte(`{"b":2,"a":[1,2]}`)},
		{name: "array", answer: str(doc), key: "list", want: []byte("[1,2]")},
		{name: "missing key", answer: str(doc), key: "pass", wantCode: CodeKeyNotFound, wantMsg: `"pass" not found`},
		{name: "missing nested key", answer: str(doc), key: "db.replica.host", wantCode: CodeKeyNotFound, wantMsg: `"db.replica" not found`},
		{name: "through a string", answer: str(doc), key: "user.name", wantCode: CodeKeyNotFound, wantMsg: `"user" is not a JSON object`},
		{name: "through an array", answer: str(doc), key: "list.0", wantCode: CodeKeyNotFound, wantMsg: `"list" is not a JSON object`},
		{name: "not json", answer: str("plain-s3cret"), key: "user", wantCode: CodeNotJSON},
		{name: "json array", answer: str(`["s3cret"]`), key: "user", wantCode: CodeNotJSON},
		{name: "broken json", answer: str(`{"user": s3cret}`), key: "user", wantCode: CodeNotJSON, wantMsg: "syntax error at byte"},
		{name: "binary", answer: bin(binary), want: binary},
		{name: "binary with key", answer: bin(binary), key: "user", wantCode: CodeNotJSON},
		{name: "empty string", answer: str(""), want: []byte{}},
		{name: "no value", answer: answer{out: &secretsmanager.GetSecretValueOutput{VersionId: aws.String("00000000-0000-4000-8000-000000000000")}}, wantCode: CodeNoValue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStub()
			s.set("app/db", tt.answer)
			var log bytes.Buffer
			res, err := Fetch(context.Background(), onePlan(plan.Secret{File: "db", ID: "app/db", Key: tt.key}), stubOptions(s))
			if err != nil {
				fmt.Fprint(&log, err.Error())
			}
			for _, secret := range []string{"s3cret", "admin", "5432", "p@ss"} {
				if strings.Contains(log.String(), secret) {
					t.Fatalf("the error shows part of a value (%d bytes of error)", log.Len())
				}
			}
			if tt.wantCode != "" {
				var se *SecretError
				if !errors.As(err, &se) || se.Code != tt.wantCode {
					t.Fatalf("error = %v, want code %s", err, tt.wantCode)
				}
				if !strings.Contains(err.Error(), "app/db") || (tt.key != "" && !strings.Contains(err.Error(), tt.key)) {
					t.Errorf("error %q does not name the secret and the key", err)
				}
				if !strings.Contains(err.Error(), tt.wantMsg) {
					t.Errorf("error %q does not contain %q", err, tt.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if !bytes.Equal(res[0].Value, tt.want) {
				t.Errorf("value = %s, want %s", digest(res[0].Value), digest(tt.want))
			}
		})
	}
}

func TestFetchPatternMismatchHidesValue(t *testing.T) {
	s := newStub()
	s.set("app/token", str("abc;rm -rf /"))
	s.set("app/ok", str("abc123"))
	p := onePlan(
		plan.Secret{File: "token", ID: "app/token", Pattern: "[a-z0-9]+"},
		plan.Secret{File: "ok", ID: "app/ok", Pattern: "[a-z0-9]+"},
	)
	_, err := Fetch(context.Background(), p, stubOptions(s))
	var fe *Error
	if !errors.As(err, &fe) || len(fe.Failures) != 1 || fe.Failures[0].Code != CodePatternMismatch || fe.Failures[0].ID != "app/token" {
		t.Fatalf("error = %v, want one PatternMismatch for app/token", err)
	}
	if strings.Contains(err.Error(), "rm -rf") || strings.Contains(err.Error(), "abc") {
		t.Error("the error shows the value")
	}
	if !strings.Contains(err.Error(), "[a-z0-9]+") {
		t.Errorf("error %q does not show the pattern", err)
	}
}

func TestFetchVersionSelection(t *testing.T) {
	s := newStub()
	s.set("a", str("1"))
	s.set("b", str("2"))
	s.set("c", str("3"))
	p := onePlan(
		plan.Secret{File: "a", ID: "a", VersionStage: "AWSPREVIOUS"},
		plan.Secret{File: "b", ID: "b", VersionID: "EXAMPLE1-90ab-cdef-fedc-ba987EXAMPLE"},
		plan.Secret{File: "c", ID: "c"},
	)
	if _, err := Fetch(context.Background(), p, stubOptions(s)); err != nil {
		t.Fatal(err)
	}
	got := map[string][2]string{}
	for _, in := range s.inputs {
		got[aws.ToString(in.SecretId)] = [2]string{aws.ToString(in.VersionStage), aws.ToString(in.VersionId)}
	}
	want := map[string][2]string{"a": {"AWSPREVIOUS", ""}, "b": {"", "EXAMPLE1-90ab-cdef-fedc-ba987EXAMPLE"}, "c": {"", ""}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("inputs (stage, id) = %v, want %v", got, want)
	}
}

func TestFetchConcurrencyIsBounded(t *testing.T) {
	for _, conc := range []int{1, 3, 8} {
		t.Run(fmt.Sprint(conc), func(t *testing.T) {
			s := newStub()
			s.delay = 5 * time.Millisecond
			var secrets []plan.Secret
			for i := range 20 {
				id := fmt.Sprintf("s%d", i)
				s.set(id, str(id))
				secrets = append(secrets, plan.Secret{File: id, ID: id})
			}
			o := stubOptions(s)
			o.Concurrency = conc
			res, err := Fetch(context.Background(), onePlan(secrets...), o)
			if err != nil {
				t.Fatal(err)
			}
			if s.maxIn > conc {
				t.Errorf("%d requests in flight at once, want at most %d", s.maxIn, conc)
			}
			for i, r := range res {
				if r.Secret.File != secrets[i].File || string(r.Value) != secrets[i].ID {
					t.Errorf("result %d is for %s, want plan order", i, r.Secret.File)
				}
			}
		})
	}
}

func TestFetchPartialFailureZeroesAndNamesAll(t *testing.T) {
	s := newStub()
	var secrets []plan.Secret
	values := map[string][]byte{}
	for i := range 20 {
		id := fmt.Sprintf("app/s%02d", i)
		secrets = append(secrets, plan.Secret{File: fmt.Sprintf("s%02d", i), ID: id})
		switch i {
		case 4:
			s.set(id, fail("AccessDeniedException", 400))
		case 11:
			s.set(id, fail("ResourceNotFoundException", 400))
		default:
			values[id] = []byte("value-of-" + id)
			s.set(id, bin(values[id]))
		}
	}
	// Catch the slices Fetch hands around, to check it zeroes them.
	var mu sync.Mutex
	var seen [][]byte
	o := stubOptions(s)
	o.Clients = func(string) (API, error) {
		return apiFunc(func(ctx context.Context, in *secretsmanager.GetSecretValueInput, f ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
			out, err := s.GetSecretValue(ctx, in, f...)
			if err == nil {
				mu.Lock()
				seen = append(seen, out.SecretBinary)
				mu.Unlock()
			}
			return out, err
		}), nil
	}
	res, err := Fetch(context.Background(), onePlan(secrets...), o)
	if res != nil {
		t.Errorf("got %d results, want none", len(res))
	}
	var fe *Error
	if !errors.As(err, &fe) {
		t.Fatalf("error = %v, want *Error", err)
	}
	var got []string
	for _, f := range fe.Failures {
		got = append(got, f.ID+" "+f.Code)
	}
	if want := []string{"app/s04 AccessDeniedException", "app/s11 ResourceNotFoundException"}; fmt.Sprint(got) != fmt.Sprint(want) || fe.Total != 20 {
		t.Errorf("failures = %q of %d, want %q of 20", got, fe.Total, want)
	}
	if len(seen) != 18 {
		t.Fatalf("%d values fetched, want 18", len(seen))
	}
	for _, b := range seen {
		if !bytes.Equal(b, make([]byte, len(b))) {
			t.Errorf("a fetched value (%d bytes) was not zeroed after the failure", len(b))
		}
	}
}

type apiFunc func(context.Context, *secretsmanager.GetSecretValueInput, ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)

func (f apiFunc) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, o ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	return f(ctx, in, o...)
}

func TestFetchOneClientPerRegion(t *testing.T) {
	s := newStub()
	arnEU := "arn:aws:secretsmanager:eu-west-1:111122223333:secret:eu/db"
	arnEU2 := "arn:aws:secretsmanager:eu-west-1:111122223333:secret:eu/api"
	for _, id := range []string{arnEU, arnEU2, "local/db", "local/api"} {
		s.set(id, str("v"))
	}
	var regions []string
	o := stubOptions(s)
	o.Clients = func(region string) (API, error) {
		regions = append(regions, region)
		return apiFunc(func(ctx context.Context, in *secretsmanager.GetSecretValueInput, f ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
			id := aws.ToString(in.SecretId)
			if wantEU := strings.HasPrefix(id, "arn:"); wantEU != (region == "eu-west-1") {
				return nil, fmt.Errorf("secret %s asked of the %s client", id, region)
			}
			return s.GetSecretValue(ctx, in, f...)
		}), nil
	}
	p := onePlan(
		plan.Secret{File: "a", ID: arnEU}, plan.Secret{File: "b", ID: "local/db"},
		plan.Secret{File: "c", ID: arnEU2}, plan.Secret{File: "d", ID: "local/api"},
	)
	if _, err := Fetch(context.Background(), p, o); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(regions) != "[eu-west-1 us-east-1]" {
		t.Errorf("clients made for %q, want one for eu-west-1 then one for us-east-1", regions)
	}
}

func TestFetchMissingRegion(t *testing.T) {
	o := Options{Clients: SDKClients(aws.Config{})}
	p := &plan.Plan{Version: 1, Dir: "/d", Secrets: []plan.Secret{{File: "a", ID: "app/db"}}}
	_, err := Fetch(context.Background(), p, o)
	var se *SecretError
	if !errors.As(err, &se) || se.Code != CodeMissingRegion || se.ID != "app/db" {
		t.Fatalf("error = %v, want %s for app/db", err, CodeMissingRegion)
	}
}

func TestSecretErrorMessage(t *testing.T) {
	e := &SecretError{ID: "prod/db", File: "db", Code: "AccessDeniedException", Attempts: 1, Err: errors.New("denied")}
	want := "secret prod/db (file db): AccessDeniedException after 1 attempt(s): denied"
	if e.Error() != want {
		t.Errorf("Error() = %q, want %q", e.Error(), want)
	}
}

// TestFetchSharesRequests: secrets that name the same secret ID and version
// in the same region share one GetSecretValue call, so that files cut from
// one secret come from one version of it; each still gets its own value and
// its own failure.
func TestFetchSharesRequests(t *testing.T) {
	const doc = `{"user":"admin","password":"s3cret"}`
	blob := []byte{0x00, 0xff, 0x10}
	s := newStub()
	s.set("app/db", str(doc))
	s.set("app/blob", bin(blob))
	p := onePlan(
		plan.Secret{File: "user", ID: "app/db", Key: "user"},
		plan.Secret{File: "blob-a", ID: "app/blob"},
		plan.Secret{File: "password", ID: "app/db", Key: "password"},
		plan.Secret{File: "previous", ID: "app/db", Key: "user", VersionStage: "AWSPREVIOUS"},
		plan.Secret{File: "whole", ID: "app/db"},
		plan.Secret{File: "blob-b", ID: "app/blob"},
	)
	res, err := Fetch(context.Background(), p, stubOptions(s))
	if err != nil {
		t.Fatal(err)
	}
	// app/db twice (AWSCURRENT, the default, and AWSPREVIOUS), app/blob once.
	if db, blobs := s.count("app/db"), s.count("app/blob"); db != 2 || blobs != 1 {
		t.Errorf("GetSecretValue called %d times for app/db and %d for app/blob, want 2 and 1", db, blobs)
	}
	want := map[string][]byte{"user": []byte("admin"), "password": []byte("s3cret"), "previous": []byte("admin"),
		"whole": []byte(doc), "blob-a": blob, "blob-b": blob}
	for i, r := range res {
		if !reflect.DeepEqual(r.Secret, p.Secrets[i]) {
			t.Errorf("result %d is for %s, want %s (plan order)", i, r.Secret.File, p.Secrets[i].File)
		}
		if !bytes.Equal(r.Value, want[r.Secret.File]) {
			t.Errorf("%s = %s, want %s", r.Secret.File, digest(r.Value), digest(want[r.Secret.File]))
		}
	}
	// Two files from one binary answer hold copies of their own, and the
	// SDK's slice is zeroed once both have them.
	clear(res[1].Value)
	if !bytes.Equal(res[5].Value, blob) {
		t.Error("zeroing one file's value zeroed another's")
	}
	for _, out := range s.handed {
		if out.SecretBinary != nil && !bytes.Equal(out.SecretBinary, make([]byte, len(blob))) {
			t.Error("the SDK's SecretBinary was not zeroed")
		}
	}
}

func TestFetchSharedRequestFailsEachSecret(t *testing.T) {
	s := newStub()
	s.set("app/db", fail("ThrottlingException", 400), fail("AccessDeniedException", 400))
	s.set("app/ok", str(`{"user":"admin"}`))
	p := onePlan(
		plan.Secret{File: "user", ID: "app/db", Key: "user"},
		plan.Secret{File: "ok", ID: "app/ok", Key: "user", Pattern: "[0-9]+"},
		plan.Secret{File: "password", ID: "app/db", Key: "password"},
	)
	var retries []string
	o := stubOptions(s)
	o.OnRetry = func(r Retry) { retries = append(retries, fmt.Sprintf("%s%v#%d", r.ID, r.Files, r.Attempt)) }
	_, err := Fetch(context.Background(), p, o)
	var fe *Error
	if !errors.As(err, &fe) || len(fe.Failures) != 3 {
		t.Fatalf("Fetch error = %v, want all 3 secrets failed", err)
	}
	wantFailures := []string{"user AccessDeniedException 2", "ok PatternMismatch 1", "password AccessDeniedException 2"}
	for i, f := range fe.Failures {
		if got := fmt.Sprintf("%s %s %d", f.File, f.Code, f.Attempts); got != wantFailures[i] {
			t.Errorf("failure %d = %s, want %s", i, got, wantFailures[i])
		}
	}
	if n := s.count("app/db"); n != 2 {
		t.Errorf("GetSecretValue called %d times for app/db, want 2 (one throttled attempt, one denied)", n)
	}
	if want := "[app/db[user password]#1]"; fmt.Sprint(retries) != want {
		t.Errorf("retries = %v, want %s", retries, want)
	}
}

// TestGroupsNormaliseStage: the default stage and an explicit AWSCURRENT
// are one version selector, so files cut from one secret with and without
// version-stage-<name>: AWSCURRENT share one request and always come from
// one version, even while the secret is rotated. A version ID is a selector
// of its own.
func TestGroupsNormaliseStage(t *testing.T) {
	const v = "EXAMPLE1-90ab-cdef-fedc-ba987EXAMPLE"
	p := onePlan(
		plan.Secret{File: "user", ID: "app/db", Key: "user"},
		plan.Secret{File: "password", ID: "app/db", Key: "password", VersionStage: "AWSCURRENT"},
		plan.Secret{File: "previous", ID: "app/db", Key: "user", VersionStage: "AWSPREVIOUS"},
		plan.Secret{File: "pinned", ID: "app/db", Key: "user", VersionID: v},
		plan.Secret{File: "whole", ID: "app/db", VersionStage: "AWSCURRENT"},
	)
	if got, want := fmt.Sprint(Groups(p)), "[[0 1 4] [2] [3]]"; got != want {
		t.Errorf("Groups = %s, want %s", got, want)
	}
	s := newStub()
	s.set("app/db", str(`{"user":"admin","password":"s3cret"}`))
	res, err := Fetch(context.Background(), p, stubOptions(s))
	if err != nil {
		t.Fatal(err)
	}
	if n := s.count("app/db"); n != 3 {
		t.Errorf("GetSecretValue called %d times, want 3 (AWSCURRENT, AWSPREVIOUS, the version ID)", n)
	}
	for i, r := range res {
		if !reflect.DeepEqual(r.Secret, p.Secrets[i]) {
			t.Errorf("result %d is for %s, want %s", i, r.Secret.File, p.Secrets[i].File)
		}
	}
}
