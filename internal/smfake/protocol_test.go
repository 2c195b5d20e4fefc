package smfake

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/google/go-cmp/cmp"
)

// These tests drive the real SDK client through every implemented
// operation and check what it decodes.

func TestSDKGetSecretValue(t *testing.T) {
	t0, clock := fixedClock()
	s, ts := start(t, clock)
	c := client(t, ts.URL, nil)
	ctx := context.Background()

	arn, v1 := mustCreate(t, s, "app/db", "first")
	v2, err := s.PutSecretValue("app/db", Value{String: "second"})
	if err != nil {
		t.Fatal(err)
	}
	partial := arn[:len(arn)-7]
	binARN, binV, err := s.CreateSecret("app/cert", Value{Binary: []byte{0, 1, 2, 0xff}})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		in         secretsmanager.GetSecretValueInput
		wantARN    string
		wantVer    string
		wantStages []string
		wantString string
		wantBinary []byte
	}{
		{"by name", secretsmanager.GetSecretValueInput{SecretId: aws.String("app/db")}, arn, v2, []string{StageCurrent}, "second", nil},
		{"by full ARN", secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)}, arn, v2, []string{StageCurrent}, "second", nil},
		{"by partial ARN", secretsmanager.GetSecretValueInput{SecretId: aws.String(partial)}, arn, v2, []string{StageCurrent}, "second", nil},
		{"previous stage", secretsmanager.GetSecretValueInput{SecretId: aws.String("app/db"), VersionStage: aws.String(StagePrevious)}, arn, v1, []string{StagePrevious}, "first", nil},
		{"by version ID", secretsmanager.GetSecretValueInput{SecretId: aws.String("app/db"), VersionId: aws.String(v1)}, arn, v1, []string{StagePrevious}, "first", nil},
		{"version ID and its stage", secretsmanager.GetSecretValueInput{SecretId: aws.String("app/db"), VersionId: aws.String(v2), VersionStage: aws.String(StageCurrent)}, arn, v2, []string{StageCurrent}, "second", nil},
		{"binary", secretsmanager.GetSecretValueInput{SecretId: aws.String("app/cert")}, binARN, binV, []string{StageCurrent}, "", []byte{0, 1, 2, 0xff}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := c.GetSecretValue(ctx, &tt.in)
			if err != nil {
				t.Fatalf("GetSecretValue: %v", err)
			}
			if aws.ToString(out.ARN) != tt.wantARN || aws.ToString(out.VersionId) != tt.wantVer {
				t.Errorf("ARN, VersionId = %q, %q; want %q, %q", aws.ToString(out.ARN), aws.ToString(out.VersionId), tt.wantARN, tt.wantVer)
			}
			if diff := cmp.Diff(tt.wantStages, out.VersionStages); diff != "" {
				t.Errorf("VersionStages (-want +got):\n%s", diff)
			}
			if tt.wantBinary != nil {
				if out.SecretString != nil || !bytes.Equal(out.SecretBinary, tt.wantBinary) {
					t.Errorf("binary value: got %d bytes (hash %s), string set %v; want %d bytes", len(out.SecretBinary), hash(out.SecretBinary), out.SecretString != nil, len(tt.wantBinary))
				}
			} else if out.SecretBinary != nil || out.SecretString == nil || *out.SecretString != tt.wantString {
				t.Errorf("string value differs (got hash %s, want hash %s)", hash([]byte(aws.ToString(out.SecretString))), hash([]byte(tt.wantString)))
			}
			if out.CreatedDate == nil || !out.CreatedDate.Equal(t0) {
				t.Errorf("CreatedDate = %v, want %v", out.CreatedDate, t0)
			}
		})
	}
}

func TestSDKGetSecretValueErrors(t *testing.T) {
	s, ts := start(t)
	c := client(t, ts.URL, nil)
	_, v1 := mustCreate(t, s, "app/db", "first")
	if _, err := s.PutSecretValue("app/db", Value{String: "second"}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name        string
		in          secretsmanager.GetSecretValueInput
		wantMessage string
	}{
		{"missing secret", secretsmanager.GetSecretValueInput{SecretId: aws.String("nope")}, "Secrets Manager can't find the specified secret."},
		{"ARN of another region", secretsmanager.GetSecretValueInput{SecretId: aws.String("arn:aws:secretsmanager:eu-west-1:111122223333:secret:app/db")}, "Secrets Manager can't find the specified secret."},
		{"unknown version ID", secretsmanager.GetSecretValueInput{SecretId: aws.String("app/db"), VersionId: aws.String("00000000-0000-4000-8000-000000000000")}, ""},
		{"unknown stage", secretsmanager.GetSecretValueInput{SecretId: aws.String("app/db"), VersionStage: aws.String("AWSPENDING")}, ""},
		{"version ID and another stage", secretsmanager.GetSecretValueInput{SecretId: aws.String("app/db"), VersionId: aws.String(v1), VersionStage: aws.String(StageCurrent)}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.GetSecretValue(context.Background(), &tt.in)
			var rnf *types.ResourceNotFoundException
			if !errors.As(err, &rnf) {
				t.Fatalf("err = %v, want *types.ResourceNotFoundException", err)
			}
			if tt.wantMessage != "" && rnf.ErrorMessage() != tt.wantMessage {
				t.Errorf("message %q, want %q", rnf.ErrorMessage(), tt.wantMessage)
			}
		})
	}
}

func TestSDKCreateAndPut(t *testing.T) {
	s, ts := start(t)
	c := client(t, ts.URL, nil)
	ctx := context.Background()

	created, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name:         aws.String("svc/token"),
		SecretString: aws.String("t1"),
		Description:  aws.String("a token"),
		Tags:         []types.Tag{{Key: aws.String("team"), Value: aws.String("infra")}},
	})
	if err != nil {
		t.Fatalf("CreateSecret: %v", err)
	}
	info, _ := s.Secret("svc/token")
	if aws.ToString(created.ARN) != info.ARN || aws.ToString(created.Name) != "svc/token" || info.VersionStages[aws.ToString(created.VersionId)] == nil {
		t.Errorf("CreateSecret answered %q %q %q; store has %+v", aws.ToString(created.ARN), aws.ToString(created.Name), aws.ToString(created.VersionId), info)
	}

	// The SDK fills ClientRequestToken itself; a fixed one shows idempotency.
	const token = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
	put := &secretsmanager.PutSecretValueInput{SecretId: created.ARN, SecretBinary: []byte("t2"), ClientRequestToken: aws.String(token)}
	out, err := c.PutSecretValue(ctx, put)
	if err != nil {
		t.Fatalf("PutSecretValue: %v", err)
	}
	if aws.ToString(out.VersionId) != token || !slices.Equal(out.VersionStages, []string{StageCurrent}) {
		t.Errorf("PutSecretValue = version %q stages %v; want %q [AWSCURRENT]", aws.ToString(out.VersionId), out.VersionStages, token)
	}
	if _, err := c.PutSecretValue(ctx, put); err != nil {
		t.Errorf("repeating PutSecretValue with the same token and value: %v", err)
	}
	put.SecretBinary = []byte("t3")
	_, err = c.PutSecretValue(ctx, put)
	var exists *types.ResourceExistsException
	if !errors.As(err, &exists) {
		t.Errorf("same token, other value: err = %v, want *types.ResourceExistsException", err)
	}

	staged, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("svc/token"), SecretString: aws.String("t4"), VersionStages: []string{"AWSPENDING"}})
	if err != nil {
		t.Fatal(err)
	}
	desc, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("svc/token")})
	if err != nil {
		t.Fatalf("DescribeSecret: %v", err)
	}
	want := map[string][]string{
		aws.ToString(created.VersionId): {StagePrevious},
		token:                           {StageCurrent},
		aws.ToString(staged.VersionId):  {"AWSPENDING"},
	}
	if diff := cmp.Diff(want, desc.VersionIdsToStages); diff != "" {
		t.Errorf("VersionIdsToStages (-want +got):\n%s", diff)
	}
	if aws.ToString(desc.Description) != "a token" || len(desc.Tags) != 1 || aws.ToString(desc.Tags[0].Key) != "team" {
		t.Errorf("DescribeSecret lost the description or tags: %q %v", aws.ToString(desc.Description), desc.Tags)
	}
	if desc.CreatedDate == nil || desc.LastChangedDate == nil {
		t.Errorf("DescribeSecret dates missing: created %v changed %v", desc.CreatedDate, desc.LastChangedDate)
	}
	if desc.LastAccessedDate != nil {
		t.Errorf("LastAccessedDate = %v before any read", desc.LastAccessedDate)
	}
	if _, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("svc/token")}); err != nil {
		t.Fatal(err)
	}
	desc, err = c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("svc/token")})
	if err != nil {
		t.Fatal(err)
	}
	if desc.LastAccessedDate == nil || !desc.LastAccessedDate.Equal(desc.LastAccessedDate.Truncate(24*60*60*1e9)) {
		t.Errorf("LastAccessedDate = %v, want a day boundary after a read", desc.LastAccessedDate)
	}
}

func TestSDKCreateSecretWithoutValue(t *testing.T) {
	_, ts := start(t)
	c := client(t, ts.URL, nil)
	ctx := context.Background()
	out, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("later")})
	if err != nil {
		t.Fatal(err)
	}
	if out.VersionId != nil {
		t.Errorf("VersionId = %q for a secret without a value", *out.VersionId)
	}
	_, err = c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("later")})
	var rnf *types.ResourceNotFoundException
	if !errors.As(err, &rnf) {
		t.Errorf("GetSecretValue of a secret without a value: %v, want ResourceNotFoundException", err)
	}
}

func TestSDKValidationErrors(t *testing.T) {
	s, ts := start(t)
	c := client(t, ts.URL, nil)
	ctx := context.Background()
	mustCreate(t, s, "exists", "v")

	var invalid *types.InvalidParameterException
	var exists *types.ResourceExistsException
	tests := []struct {
		name string
		call func() error
		want any
	}{
		{"create existing", func() error {
			_, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("exists"), SecretString: aws.String("v")})
			return err
		}, &exists},
		{"create with both values", func() error {
			_, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("both"), SecretString: aws.String("v"), SecretBinary: []byte("v")})
			return err
		}, &invalid},
		{"create with a bad name", func() error {
			_, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("a b"), SecretString: aws.String("v")})
			return err
		}, &invalid},
		{"put without a value", func() error {
			_, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("exists")})
			return err
		}, &invalid},
		{"batch with neither list nor filters", func() error {
			_, err := c.BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{})
			return err
		}, &invalid},
		{"batch with both", func() error {
			_, err := c.BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{SecretIdList: []string{"exists"}, Filters: []types.Filter{{Key: types.FilterNameStringTypeName, Values: []string{"e"}}}})
			return err
		}, &invalid},
		{"batch of 21", func() error {
			ids := make([]string, 21)
			for i := range ids {
				ids[i] = "exists"
			}
			_, err := c.BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{SecretIdList: ids})
			return err
		}, &invalid},
		{"list with a bad filter key", func() error {
			_, err := c.ListSecrets(ctx, &secretsmanager.ListSecretsInput{Filters: []types.Filter{{Key: "colour", Values: []string{"x"}}}})
			return err
		}, &invalid},
		{"list with MaxResults 101", func() error {
			_, err := c.ListSecrets(ctx, &secretsmanager.ListSecretsInput{MaxResults: aws.Int32(101)})
			return err
		}, &invalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.As(err, tt.want) {
				t.Fatalf("err = %v, want %T", err, tt.want)
			}
		})
	}

	_, err := c.ListSecrets(ctx, &secretsmanager.ListSecretsInput{NextToken: aws.String("bogus")})
	var badToken *types.InvalidNextTokenException
	if !errors.As(err, &badToken) {
		t.Errorf("ListSecrets with a bogus token: %v, want InvalidNextTokenException", err)
	}
}

func TestSDKBatchGetSecretValue(t *testing.T) {
	s, ts := start(t)
	c := client(t, ts.URL, nil)
	ctx := context.Background()
	arnA, _ := mustCreate(t, s, "batch/a", "A")
	mustCreate(t, s, "batch/b", "B")
	mustCreate(t, s, "other/c", "C")

	out, err := c.BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{SecretIdList: []string{arnA, "batch/b", "batch/missing"}})
	if err != nil {
		t.Fatalf("BatchGetSecretValue: %v", err)
	}
	var names []string
	for _, v := range out.SecretValues {
		names = append(names, aws.ToString(v.Name))
		if v.CreatedDate == nil || aws.ToString(v.VersionId) == "" || !slices.Equal(v.VersionStages, []string{StageCurrent}) {
			t.Errorf("entry %s lacks date, version or stages: %+v", aws.ToString(v.Name), v)
		}
	}
	if diff := cmp.Diff([]string{"batch/a", "batch/b"}, names); diff != "" {
		t.Errorf("SecretValues names (-want +got):\n%s", diff)
	}
	if len(out.Errors) != 1 || aws.ToString(out.Errors[0].SecretId) != "batch/missing" ||
		aws.ToString(out.Errors[0].ErrorCode) != codeResourceNotFound || aws.ToString(out.Errors[0].Message) == "" {
		t.Errorf("Errors = %+v, want one ResourceNotFoundException for batch/missing", out.Errors)
	}

	// Filters page through the matching secrets.
	var got []string
	in := &secretsmanager.BatchGetSecretValueInput{Filters: []types.Filter{{Key: types.FilterNameStringTypeName, Values: []string{"batch/"}}}, MaxResults: aws.Int32(1)}
	for page := 0; ; page++ {
		out, err := c.BatchGetSecretValue(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range out.SecretValues {
			got = append(got, aws.ToString(v.Name))
		}
		if out.NextToken == nil || page > 5 {
			break
		}
		in.NextToken = out.NextToken
	}
	sort.Strings(got)
	if diff := cmp.Diff([]string{"batch/a", "batch/b"}, got); diff != "" {
		t.Errorf("filtered batch (-want +got):\n%s", diff)
	}
}

func TestSDKListSecrets(t *testing.T) {
	s, ts := start(t)
	c := client(t, ts.URL, nil)
	ctx := context.Background()
	for _, name := range []string{"prod/a", "prod/b", "dev/a"} {
		mustCreate(t, s, name, "v")
	}
	_, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name: aws.String("tagged"), SecretString: aws.String("v"), Description: aws.String("Payments DB"),
		Tags: []types.Tag{{Key: aws.String("env"), Value: aws.String("staging")}},
	})
	if err != nil {
		t.Fatal(err)
	}

	list := func(in *secretsmanager.ListSecretsInput) []string {
		t.Helper()
		var names []string
		p := secretsmanager.NewListSecretsPaginator(c, in)
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				t.Fatalf("ListSecrets: %v", err)
			}
			for _, e := range out.SecretList {
				names = append(names, aws.ToString(e.Name))
				if len(e.SecretVersionsToStages) != 1 {
					t.Errorf("%s: SecretVersionsToStages = %v", aws.ToString(e.Name), e.SecretVersionsToStages)
				}
			}
		}
		return names
	}
	filter := func(key types.FilterNameStringType, values ...string) []types.Filter {
		return []types.Filter{{Key: key, Values: values}}
	}
	tests := []struct {
		name string
		in   secretsmanager.ListSecretsInput
		want []string
	}{
		{"all, paged by one, by name", secretsmanager.ListSecretsInput{MaxResults: aws.Int32(1), SortBy: types.SortByTypeName, SortOrder: types.SortOrderTypeAsc}, []string{"dev/a", "prod/a", "prod/b", "tagged"}},
		{"by name descending", secretsmanager.ListSecretsInput{SortBy: types.SortByTypeName, SortOrder: types.SortOrderTypeDesc}, []string{"tagged", "prod/b", "prod/a", "dev/a"}},
		{"created order ascending", secretsmanager.ListSecretsInput{SortOrder: types.SortOrderTypeAsc}, []string{"prod/a", "prod/b", "dev/a", "tagged"}},
		{"name prefix", secretsmanager.ListSecretsInput{Filters: filter("name", "prod/"), SortBy: types.SortByTypeName, SortOrder: types.SortOrderTypeAsc}, []string{"prod/a", "prod/b"}},
		{"name prefix is case-sensitive", secretsmanager.ListSecretsInput{Filters: filter("name", "PROD/")}, nil},
		{"negated name", secretsmanager.ListSecretsInput{Filters: filter("name", "!prod/"), SortBy: types.SortByTypeName, SortOrder: types.SortOrderTypeAsc}, []string{"dev/a", "tagged"}},
		{"values are ORed", secretsmanager.ListSecretsInput{Filters: filter("name", "dev/", "tagged"), SortBy: types.SortByTypeName, SortOrder: types.SortOrderTypeAsc}, []string{"dev/a", "tagged"}},
		{"description ignores case", secretsmanager.ListSecretsInput{Filters: filter("description", "payments")}, []string{"tagged"}},
		{"tag key", secretsmanager.ListSecretsInput{Filters: filter("tag-key", "env")}, []string{"tagged"}},
		{"tag value", secretsmanager.ListSecretsInput{Filters: filter("tag-value", "stag")}, []string{"tagged"}},
		{"all words", secretsmanager.ListSecretsInput{Filters: filter("all", "STAGING")}, []string{"tagged"}},
		{"filters are ANDed", secretsmanager.ListSecretsInput{Filters: append(filter("name", "prod/"), filter("tag-key", "env")...)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, list(&tt.in)); diff != "" {
				t.Errorf("names (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSDKUnknownOperation(t *testing.T) {
	s, ts := start(t)
	mustCreate(t, s, "x", "v")
	c := client(t, ts.URL, nil)
	_, err := c.DeleteSecret(context.Background(), &secretsmanager.DeleteSecretInput{SecretId: aws.String("x")})
	if apiCode(err) != codeUnknownOperation {
		t.Fatalf("DeleteSecret: %v, want %s", err, codeUnknownOperation)
	}
	if _, ok := s.Secret("x"); !ok {
		t.Error("an unimplemented operation changed the store")
	}
}

func TestProtocolRejectsOtherRequests(t *testing.T) {
	_, ts := start(t)
	tests := []struct {
		name   string
		method string
		path   string
		target string
		ctype  string
	}{
		{"GET", http.MethodGet, "/", targetPrefix + "GetSecretValue", jsonContentType},
		{"other path", http.MethodPost, "/v1", targetPrefix + "GetSecretValue", jsonContentType},
		{"other service", http.MethodPost, "/", "AmazonSSM.GetParameter", jsonContentType},
		{"no target", http.MethodPost, "/", "", jsonContentType},
		{"plain JSON", http.MethodPost, "/", targetPrefix + "GetSecretValue", "application/json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, ts.URL+tt.path, strings.NewReader(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", tt.ctype)
			if tt.target != "" {
				req.Header.Set("X-Amz-Target", tt.target)
			}
			status, header, _ := exchange(t, req)
			if status != http.StatusBadRequest || header.Get("X-Amzn-ErrorType") != codeUnknownOperation {
				t.Errorf("status %d, error type %q; want 400 %s", status, header.Get("X-Amzn-ErrorType"), codeUnknownOperation)
			}
		})
	}
}

func TestSerializationException(t *testing.T) {
	_, ts := start(t)
	for _, body := range []string{`{"SecretId":`, `{"SecretId":5}`, `[]`} {
		status, _, b := rawRequest{op: "GetSecretValue", body: body}.send(t, ts.URL)
		if status != http.StatusBadRequest || errorCode(t, b) != codeSerialization {
			t.Errorf("body %q: status %d code %q, want 400 %s", body, status, errorCode(t, b), codeSerialization)
		}
	}
}

func TestErrorHeaders(t *testing.T) {
	_, ts := start(t)
	status, h, b := rawRequest{op: "GetSecretValue", body: `{"SecretId":"missing"}`}.send(t, ts.URL)
	if status != http.StatusBadRequest {
		t.Errorf("status %d, want 400", status)
	}
	if got := h.Get("Content-Type"); got != jsonContentType {
		t.Errorf("Content-Type %q", got)
	}
	if got := h.Get("X-Amzn-ErrorType"); got != codeResourceNotFound {
		t.Errorf("X-Amzn-ErrorType %q", got)
	}
	if h.Get("X-Amzn-RequestId") == "" {
		t.Error("no X-Amzn-RequestId")
	}
	if string(b) != `{"__type":"ResourceNotFoundException","Message":"Secrets Manager can't find the specified secret."}` {
		t.Errorf("body %s", b)
	}
}
