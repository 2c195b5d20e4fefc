package smfake

import (
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCreateSecretARN(t *testing.T) {
	s := New(WithRegion("eu-west-1"), WithAccountID("444455556666"))
	arn, vid, err := s.CreateSecret("prod/db", Value{String: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile(`^arn:aws:secretsmanager:eu-west-1:444455556666:secret:prod/db-[A-Za-z0-9]{6}$`)
	if !want.MatchString(arn) {
		t.Errorf("ARN %q does not match %s", arn, want)
	}
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(vid) {
		t.Errorf("version ID %q is not a UUID", vid)
	}
	info, ok := s.Secret("prod/db")
	if !ok {
		t.Fatal("Secret(prod/db) not found")
	}
	if diff := cmp.Diff(map[string][]string{vid: {StageCurrent}}, info.VersionStages); diff != "" {
		t.Errorf("stages (-want +got):\n%s", diff)
	}
}

func TestCreateSecretErrors(t *testing.T) {
	s := New()
	mustCreate(t, s, "taken", "v")
	tests := []struct {
		name     string
		secret   string
		wantCode string
	}{
		{"exists", "taken", codeResourceExists},
		{"empty name", "", codeInvalidParameter},
		{"colon", "a:b", codeInvalidParameter},
		{"space", "a b", codeInvalidParameter},
		{"too long", strings.Repeat("a", 513), codeInvalidParameter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := s.CreateSecret(tt.secret, Value{String: "v"})
			var apiErr *APIError
			if !errors.As(err, &apiErr) || apiErr.Code != tt.wantCode {
				t.Fatalf("CreateSecret(%q) = %v, want %s", tt.secret, err, tt.wantCode)
			}
		})
	}
	for _, ok := range []string{"a", "x/y_z+w=v.u@t-s!r", strings.Repeat("a", 512)} {
		if _, _, err := s.CreateSecret(ok, Value{String: "v"}); err != nil {
			t.Errorf("CreateSecret(%q): %v", ok, err)
		}
	}
}

func TestResolve(t *testing.T) {
	s := New()
	arn, _ := mustCreate(t, s, "app/db", "v")
	// A secret whose name looks like another's full ARN suffix: the full
	// ARN must still win.
	lookalikeName := "app/db-" + arn[len(arn)-6:]
	lookalikeARN, _ := mustCreate(t, s, lookalikeName, "v")
	partial := strings.TrimSuffix(arn, arn[len(arn)-7:])

	tests := []struct {
		id      string
		wantARN string // "" = not found
	}{
		{"app/db", arn},
		{arn, arn},
		{partial, arn},
		{lookalikeName, lookalikeARN},
		{lookalikeARN, lookalikeARN},
		{"app", ""},
		{"app/db-", ""},
		{strings.Replace(arn, "us-east-1", "us-west-2", 1), ""},
		{strings.Replace(arn, DefaultAccountID, "999999999999", 1), ""},
		{strings.Replace(partial, "us-east-1", "us-west-2", 1), ""},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			s.mu.Lock()
			sec := s.store.resolve(tt.id)
			s.mu.Unlock()
			got := ""
			if sec != nil {
				got = sec.arn
			}
			if got != tt.wantARN {
				t.Errorf("resolve(%q) = %q, want %q", tt.id, got, tt.wantARN)
			}
		})
	}
}

// stagesOf returns the stages of each version, in version creation order.
func stagesOf(t *testing.T, s *Server, id string, versions []string) [][]string {
	t.Helper()
	info, ok := s.Secret(id)
	if !ok {
		t.Fatalf("secret %q not found", id)
	}
	var out [][]string
	for _, v := range versions {
		st := slices.Clone(info.VersionStages[v])
		slices.Sort(st)
		if st == nil {
			st = []string{}
		}
		out = append(out, st)
	}
	return out
}

func TestStageMovement(t *testing.T) {
	type put struct {
		stages []string
	}
	tests := []struct {
		name string
		puts []put // after the CreateSecret (version 0, AWSCURRENT)
		want [][]string
	}{
		{
			name: "new current pushes old to previous",
			puts: []put{{}},
			want: [][]string{{StagePrevious}, {StageCurrent}},
		},
		{
			name: "third current takes previous from the first",
			puts: []put{{}, {}},
			want: [][]string{{}, {StagePrevious}, {StageCurrent}},
		},
		{
			name: "AWSPENDING leaves current alone",
			puts: []put{{stages: []string{"AWSPENDING"}}},
			want: [][]string{{StageCurrent}, {"AWSPENDING"}},
		},
		{
			name: "custom label moves between versions",
			puts: []put{{stages: []string{"blue"}}, {stages: []string{"blue"}}},
			want: [][]string{{StageCurrent}, {}, {"blue"}},
		},
		{
			name: "current plus a custom label",
			puts: []put{{stages: []string{StageCurrent, "green"}}},
			want: [][]string{{StagePrevious}, {StageCurrent, "green"}},
		},
		{
			name: "explicit AWSPREVIOUS without current",
			puts: []put{{}, {stages: []string{StagePrevious}}},
			want: [][]string{{}, {StageCurrent}, {StagePrevious}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New()
			_, v0 := mustCreate(t, s, "s", "v0")
			versions := []string{v0}
			for i, p := range tt.puts {
				vid, err := s.PutSecretValue("s", Value{String: "v" + string(rune('1'+i))}, p.stages...)
				if err != nil {
					t.Fatal(err)
				}
				versions = append(versions, vid)
			}
			got := stagesOf(t, s, "s", versions)
			for i := range tt.want {
				slices.Sort(tt.want[i])
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("stages per version (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPutValueIdempotency(t *testing.T) {
	s := New()
	mustCreate(t, s, "s", "v0")
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := s.store.resolve("s")
	const token = "11111111-2222-4333-8444-555555555555"
	v1, err := s.store.putValue(sec, token, Value{String: "same"}, nil, s.now())
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.store.putValue(sec, token, Value{String: "same"}, nil, s.now())
	if err != nil {
		t.Fatalf("repeating a token with the same value: %v", err)
	}
	if again != v1 || len(sec.versions) != 2 {
		t.Errorf("repeat created a version: %d versions", len(sec.versions))
	}
	_, err = s.store.putValue(sec, token, Value{String: "other"}, nil, s.now())
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Code != codeResourceExists {
		t.Errorf("repeating a token with another value = %v, want %s", err, codeResourceExists)
	}
	// A binary value is never equal to a string one, even with the same bytes.
	_, err = s.store.putValue(sec, token, Value{Binary: []byte("same")}, nil, s.now())
	if !errors.As(err, &apiErr) || apiErr.Code != codeResourceExists {
		t.Errorf("repeating a token with a binary value = %v, want %s", err, codeResourceExists)
	}
}

func TestStoreDoesNotAliasCallerBuffers(t *testing.T) {
	s := New()
	buf := []byte{1, 2, 3}
	if _, _, err := s.CreateSecret("bin", Value{Binary: buf}); err != nil {
		t.Fatal(err)
	}
	buf[0] = 9
	s.mu.Lock()
	got, err := s.readValue("bin", "", "")
	s.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if got.SecretBinary == nil || (*got.SecretBinary)[0] != 1 {
		t.Error("the store kept the caller's buffer")
	}
}

func TestPutSecretValueNotFound(t *testing.T) {
	s := New()
	_, err := s.PutSecretValue("missing", Value{String: "v"})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Code != codeResourceNotFound {
		t.Fatalf("PutSecretValue(missing) = %v, want %s", err, codeResourceNotFound)
	}
	if apiErr.Message != "Secrets Manager can't find the specified secret." {
		t.Errorf("message %q is not AWS's", apiErr.Message)
	}
}
