package smfake

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"
)

// TestSDKErrorCodes injects every error code a caller may meet and checks
// that the real SDK client turns it into the typed error (for modelled
// codes) or a smithy APIError with the code (for the others), with AWS's
// HTTP status.
func TestSDKErrorCodes(t *testing.T) {
	tests := []struct {
		code       string
		status     int // injected; 0 = AWS's
		wantStatus int
		typed      func(error) bool // nil: only the generic code is checked
	}{
		{"ResourceNotFoundException", 0, 400, func(err error) bool { var e *types.ResourceNotFoundException; return errors.As(err, &e) }},
		{"InvalidParameterException", 0, 400, func(err error) bool { var e *types.InvalidParameterException; return errors.As(err, &e) }},
		{"InvalidRequestException", 0, 400, func(err error) bool { var e *types.InvalidRequestException; return errors.As(err, &e) }},
		{"DecryptionFailure", 0, 400, func(err error) bool { var e *types.DecryptionFailure; return errors.As(err, &e) }},
		{"InternalServiceError", 0, 500, func(err error) bool { var e *types.InternalServiceError; return errors.As(err, &e) }},
		{"ResourceExistsException", 0, 400, func(err error) bool { var e *types.ResourceExistsException; return errors.As(err, &e) }},
		{"InvalidNextTokenException", 0, 400, func(err error) bool { var e *types.InvalidNextTokenException; return errors.As(err, &e) }},
		{"LimitExceededException", 0, 400, func(err error) bool { var e *types.LimitExceededException; return errors.As(err, &e) }},
		{"EncryptionFailure", 0, 400, func(err error) bool { var e *types.EncryptionFailure; return errors.As(err, &e) }},
		{"PreconditionNotMetException", 0, 400, func(err error) bool { var e *types.PreconditionNotMetException; return errors.As(err, &e) }},
		{"ThrottlingException", 0, 400, nil},
		{"AccessDeniedException", 0, 400, nil},
		{"ServiceUnavailable", 0, 503, nil},
		{"InternalServiceError", 503, 503, func(err error) bool { var e *types.InternalServiceError; return errors.As(err, &e) }},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			s, ts := start(t)
			arn, _ := mustCreate(t, s, "app/db", "v")
			c := client(t, ts.URL, nil)
			s.InjectFault(Fault{Operation: "GetSecretValue", Code: tt.code, Status: tt.status, Count: 1})
			_, err := c.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
			var ae smithy.APIError
			if !errors.As(err, &ae) || ae.ErrorCode() != tt.code {
				t.Fatalf("err = %v, want an APIError with code %s", err, tt.code)
			}
			if tt.typed != nil && !tt.typed(err) {
				t.Errorf("err %T is not the SDK's modelled type for %s", err, tt.code)
			}
			var re *awshttp.ResponseError
			if !errors.As(err, &re) || re.HTTPStatusCode() != tt.wantStatus {
				t.Errorf("HTTP status: %v, want %d", err, tt.wantStatus)
			}
			reqs := s.Requests()
			if len(reqs) != 1 || reqs[0].Code != tt.code || reqs[0].Status != tt.wantStatus || reqs[0].SecretID != arn {
				t.Errorf("request log %+v", reqs)
			}
		})
	}
}

func TestAccessDeniedMessage(t *testing.T) {
	s, ts := start(t)
	mustCreate(t, s, "app/db", "v")
	s.InjectFault(Fault{Code: "AccessDeniedException"})
	_, err := client(t, ts.URL, nil).GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("app/db")})
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatal(err)
	}
	want := "User: arn:aws:iam::111122223333:user/secretfetch-fake is not authorized to perform: secretsmanager:GetSecretValue on resource: app/db because no identity-based policy allows the secretsmanager:GetSecretValue action"
	if ae.ErrorMessage() != want {
		t.Errorf("message %q\nwant    %q", ae.ErrorMessage(), want)
	}
}

func TestFaultCountAndMatching(t *testing.T) {
	s, ts := start(t)
	arn, _ := mustCreate(t, s, "app/db", "v")
	mustCreate(t, s, "app/other", "v")
	partial := arn[:len(arn)-7]
	c := client(t, ts.URL, nil)
	ctx := context.Background()
	get := func(id string) string {
		_, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
		return apiCode(err)
	}
	describe := func(id string) string {
		_, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(id)})
		return apiCode(err)
	}

	t.Run("throttled twice then success", func(t *testing.T) {
		s.ClearFaults()
		s.ResetRequests()
		s.InjectFault(Fault{Operation: "GetSecretValue", Code: "ThrottlingException", Count: 2})
		got := []string{get("app/db"), get("app/db"), get("app/db")}
		if got[0] != "ThrottlingException" || got[1] != "ThrottlingException" || got[2] != "" {
			t.Errorf("codes %q", got)
		}
		if n := s.Count("GetSecretValue", "app/db"); n != 3 {
			t.Errorf("Count = %d, want 3", n)
		}
		if len(s.Faults()) != 0 {
			t.Errorf("Faults() = %+v after the count ran out", s.Faults())
		}
	})
	t.Run("count 0 lasts until cleared", func(t *testing.T) {
		s.ClearFaults()
		s.InjectFault(Fault{Code: "InternalServiceError"})
		for i := range 5 {
			if code := get("app/db"); code != "InternalServiceError" {
				t.Fatalf("call %d: %q", i, code)
			}
		}
		s.ClearFaults()
		if code := get("app/db"); code != "" {
			t.Errorf("after ClearFaults: %q", code)
		}
	})
	t.Run("secret matched by name, full and partial ARN", func(t *testing.T) {
		for _, faultID := range []string{"app/db", arn, partial} {
			s.ClearFaults()
			s.InjectFault(Fault{SecretID: faultID, Code: "AccessDeniedException"})
			for _, reqID := range []string{"app/db", arn, partial} {
				if code := get(reqID); code != "AccessDeniedException" {
					t.Errorf("fault on %q, request for %q: %q", faultID, reqID, code)
				}
			}
			if code := get("app/other"); code != "" {
				t.Errorf("fault on %q hit app/other: %q", faultID, code)
			}
		}
	})
	t.Run("fault on an unknown secret matches that string", func(t *testing.T) {
		s.ClearFaults()
		s.InjectFault(Fault{SecretID: "ghost", Code: "AccessDeniedException"})
		if code := get("ghost"); code != "AccessDeniedException" {
			t.Errorf("ghost: %q", code)
		}
		if code := get("app/db"); code != "" {
			t.Errorf("app/db: %q", code)
		}
	})
	t.Run("operation filter", func(t *testing.T) {
		s.ClearFaults()
		s.InjectFault(Fault{Operation: "DescribeSecret", Code: "ThrottlingException"})
		if code := get("app/db"); code != "" {
			t.Errorf("GetSecretValue: %q", code)
		}
		if code := describe("app/db"); code != "ThrottlingException" {
			t.Errorf("DescribeSecret: %q", code)
		}
	})
	t.Run("first injected code wins, all counts used", func(t *testing.T) {
		s.ClearFaults()
		s.InjectFault(Fault{Code: "ThrottlingException", Count: 1})
		s.InjectFault(Fault{Code: "InternalServiceError", Count: 2})
		got := []string{get("app/db"), get("app/db"), get("app/db")}
		if got[0] != "ThrottlingException" || got[1] != "InternalServiceError" || got[2] != "" {
			t.Errorf("codes %q", got)
		}
	})
	s.ClearFaults()
}

func TestFaultNotUsedByUnauthenticatedCalls(t *testing.T) {
	s, ts := start(t)
	mustCreate(t, s, "db", "v")
	s.InjectFault(Fault{Code: "ThrottlingException", Count: 1})
	bad := rawRequest{op: "GetSecretValue", body: `{"SecretId":"db"}`, creds: aws.Credentials{AccessKeyID: DefaultAccessKeyID, SecretAccessKey: "wrong"}}
	if _, _, b := bad.send(t, ts.URL); errorCode(t, b) != codeInvalidSignature {
		t.Fatalf("bad signature answered %s", errorCode(t, b))
	}
	good := rawRequest{op: "GetSecretValue", body: `{"SecretId":"db"}`}
	if _, _, b := good.send(t, ts.URL); errorCode(t, b) != "ThrottlingException" {
		t.Fatalf("the fault was used up by an unauthenticated call: %s", errorCode(t, b))
	}
}

func TestFaultLatency(t *testing.T) {
	s, ts := start(t)
	mustCreate(t, s, "db", "v")
	c := client(t, ts.URL, nil)

	// A latency far beyond the client's deadline: the call must time out.
	// The assertion is on the outcome, not on a duration.
	s.InjectFault(Fault{Operation: "GetSecretValue", Latency: time.Hour, Count: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("db")})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline error", err)
	}
	// Latency alone does not fail a call, and a counted latency runs out.
	s.InjectFault(Fault{Operation: "GetSecretValue", Latency: time.Millisecond, Count: 1})
	if _, err := c.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("db")}); err != nil {
		t.Fatalf("latency-only fault failed the call: %v", err)
	}
	if f := s.Faults(); len(f) != 0 {
		t.Errorf("Faults() = %+v", f)
	}
}

func TestBatchFaults(t *testing.T) {
	s, ts := start(t)
	mustCreate(t, s, "a", "v")
	bARN, _ := mustCreate(t, s, "b", "v")
	c := client(t, ts.URL, nil)
	ctx := context.Background()
	in := &secretsmanager.BatchGetSecretValueInput{SecretIdList: []string{"a", "b"}}

	s.InjectFault(Fault{Operation: "BatchGetSecretValue", SecretID: bARN, Code: "DecryptionFailure", Count: 1})
	out, err := c.BatchGetSecretValue(ctx, in)
	if err != nil {
		t.Fatalf("per-secret fault failed the call: %v", err)
	}
	if len(out.SecretValues) != 1 || aws.ToString(out.SecretValues[0].Name) != "a" ||
		len(out.Errors) != 1 || aws.ToString(out.Errors[0].SecretId) != "b" || aws.ToString(out.Errors[0].ErrorCode) != "DecryptionFailure" {
		t.Errorf("values %d errors %+v", len(out.SecretValues), out.Errors)
	}

	s.InjectFault(Fault{Operation: "BatchGetSecretValue", Code: "ThrottlingException", Count: 1})
	if _, err := c.BatchGetSecretValue(ctx, in); apiCode(err) != "ThrottlingException" {
		t.Errorf("whole-call fault: %v", err)
	}
	out, err = c.BatchGetSecretValue(ctx, in)
	if err != nil || len(out.SecretValues) != 2 || len(out.Errors) != 0 {
		t.Errorf("after the faults: %v, %d values, errors %+v", err, len(out.SecretValues), out.Errors)
	}
	if n := s.Count("BatchGetSecretValue", "b"); n != 3 {
		t.Errorf("Count(BatchGetSecretValue, b) = %d, want 3", n)
	}
	reqs := s.Requests()
	if len(reqs) != 3 || reqs[1].Code != "ThrottlingException" || strings.Join(reqs[0].SecretIDs, ",") != "a,b" {
		t.Errorf("request log %+v", reqs)
	}
	// A GetSecretValue fault never reaches into a batch.
	s.InjectFault(Fault{Operation: "GetSecretValue", SecretID: "a", Code: "AccessDeniedException"})
	if out, err := c.BatchGetSecretValue(ctx, in); err != nil || len(out.Errors) != 0 {
		t.Errorf("GetSecretValue fault leaked into a batch: %v %+v", err, out)
	}
}

func TestRequestLogStatus(t *testing.T) {
	s, ts := start(t)
	mustCreate(t, s, "db", "v")
	c := client(t, ts.URL, nil)
	ctx := context.Background()
	_, _ = c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("db")})
	_, _ = c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("nope")})
	_, _ = c.ListSecrets(ctx, &secretsmanager.ListSecretsInput{})
	reqs := s.Requests()
	want := []Request{
		{Operation: "GetSecretValue", SecretID: "db", AccessKeyID: DefaultAccessKeyID, Status: http.StatusOK},
		{Operation: "GetSecretValue", SecretID: "nope", AccessKeyID: DefaultAccessKeyID, Status: http.StatusBadRequest, Code: codeResourceNotFound},
		{Operation: "ListSecrets", AccessKeyID: DefaultAccessKeyID, Status: http.StatusOK},
	}
	if len(reqs) != len(want) {
		t.Fatalf("%d requests, want %d", len(reqs), len(want))
	}
	for i := range want {
		got := reqs[i]
		if got.Time.IsZero() {
			t.Errorf("request %d has no time", i)
		}
		got.Time = time.Time{}
		if got.Operation != want[i].Operation || got.SecretID != want[i].SecretID || got.AccessKeyID != want[i].AccessKeyID ||
			got.Status != want[i].Status || got.Code != want[i].Code {
			t.Errorf("request %d = %+v, want %+v", i, got, want[i])
		}
	}
	if s.Count("", "") != 3 || s.Count("GetSecretValue", "") != 2 || s.Count("", "nope") != 1 {
		t.Errorf("Count: %d %d %d", s.Count("", ""), s.Count("GetSecretValue", ""), s.Count("", "nope"))
	}
	s.ResetRequests()
	if len(s.Requests()) != 0 {
		t.Error("ResetRequests left entries")
	}
}

// TestLimitRate: calls over the cap are answered ThrottlingException with
// HTTP 400, as AWS answers a quota; a cap on one operation leaves the
// others alone, and removing it lets calls through again.
func TestLimitRate(t *testing.T) {
	s, ts := start(t)
	arn, _ := mustCreate(t, s, "app/db", "v")
	c := client(t, ts.URL, nil)
	// A burst of 3, refilled once every 1000 s: the fourth call is over.
	s.LimitRate("GetSecretValue", 0.001, 3)
	get := func() error {
		_, err := c.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
		return err
	}
	var codes []string
	for range 5 {
		codes = append(codes, apiCode(get()))
	}
	if want := []string{"", "", "", "ThrottlingException", "ThrottlingException"}; strings.Join(codes, ",") != strings.Join(want, ",") {
		t.Errorf("codes = %q, want %q", codes, want)
	}
	var re *awshttp.ResponseError
	if err := get(); !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusBadRequest {
		t.Errorf("over the rate: %v, want HTTP 400", err)
	}
	if _, err := c.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(arn)}); err != nil {
		t.Errorf("DescribeSecret under a cap on GetSecretValue: %v", err)
	}
	s.LimitRate("GetSecretValue", 0, 0)
	if err := get(); err != nil {
		t.Errorf("after the cap was removed: %v", err)
	}
}
