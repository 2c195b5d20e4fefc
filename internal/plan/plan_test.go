package plan_test

import (
	"errors"
	"io/fs"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/secretfetch/secretfetch/internal/plan"
)

const exampleARN = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/db-AbCdEf"

func validPlan() *plan.Plan {
	return &plan.Plan{
		Version: plan.Version,
		Dir:     plan.DefaultDir,
		Region:  "us-east-1",
		Secrets: []plan.Secret{
			{File: "db", ID: exampleARN, Key: "db.password", VersionStage: "AWSCURRENT", Mode: 0o440, Pattern: "[A-Za-z0-9]+"},
			{File: "api-key.txt", ID: "prod/api_key", VersionID: "EXAMPLE1-90ab-cdef-fedc-ba987EXAMPLE"},
		},
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	p := validPlan()
	enc, err := plan.Encode(p)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	if !strings.Contains(enc, `"mode":"0440"`) {
		t.Errorf("encoded plan %s does not carry the mode as an octal string", enc)
	}
	if strings.Contains(enc, "\n") {
		t.Errorf("encoded plan is not compact: %q", enc)
	}
	got, err := plan.Decode([]byte(enc))
	if err != nil {
		t.Fatalf("Decode(Encode(p)): %v", err)
	}
	if got.Version != p.Version || got.Dir != p.Dir || got.Region != p.Region || !reflect.DeepEqual(got.Secrets, p.Secrets) {
		t.Errorf("round trip changed the plan:\n got %+v\nwant %+v", got, p)
	}
}

func TestDecodeDesignExample(t *testing.T) {
	// The example printed in design.md, which users see in kubectl describe.
	const doc = `{"version":1,"dir":"/var/run/secrets/app","region":"us-east-1",
 "secrets":[{"file":"db","id":"arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/db-AbCdEf",
             "key":"password","versionStage":"AWSCURRENT","mode":"0400","pattern":"^[A-Za-z0-9]+$"}]}`
	p, err := plan.Decode([]byte(doc))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	s := p.Secrets[0]
	if s.File != "db" || s.Key != "password" || s.VersionStage != "AWSCURRENT" || s.Mode != 0o400 || s.FileMode() != 0o400 {
		t.Errorf("decoded secret = %+v", s)
	}
}

// TestDecodeRejects checks that every bad plan is refused with the field
// named, and that every problem is reported at once.
func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		name   string
		doc    string
		fields []string // FieldError.Field values expected, in order
		substr string   // for errors that are not field errors
	}{
		{name: "wrong version", doc: `{"version":2,"dir":"/d","secrets":[{"file":"a","id":"x"}]}`, fields: []string{"version"}},
		{name: "relative dir", doc: `{"version":1,"dir":"d","secrets":[{"file":"a","id":"x"}]}`, fields: []string{"dir"}},
		{name: "unclean dir", doc: `{"version":1,"dir":"/d/../e","secrets":[{"file":"a","id":"x"}]}`, fields: []string{"dir"}},
		{name: "root dir", doc: `{"version":1,"dir":"/","secrets":[{"file":"a","id":"x"}]}`, fields: []string{"dir"}},
		{name: "dir with colon", doc: `{"version":1,"dir":"/a:b","secrets":[{"file":"a","id":"x"}]}`, fields: []string{"dir"}},
		{name: "subdir with a slash", doc: `{"version":1,"dir":"/d","subdir":"a/b","secrets":[{"file":"a","id":"x"}]}`, fields: []string{"subdir"}},
		{name: "subdir ..", doc: `{"version":1,"dir":"/d","subdir":"..","secrets":[{"file":"a","id":"x"}]}`, fields: []string{"subdir"}},
		{name: "bad region", doc: `{"version":1,"dir":"/d","region":"Mars","secrets":[{"file":"a","id":"x"}]}`, fields: []string{"region"}},
		{name: "no secrets", doc: `{"version":1,"dir":"/d","secrets":[]}`, fields: []string{"secrets"}},
		{name: "null secrets", doc: `{"version":1,"dir":"/d","secrets":null}`, fields: []string{"secrets"}},
		{name: "hidden file", doc: `{"version":1,"dir":"/d","secrets":[{"file":".a","id":"x"}]}`, fields: []string{"secrets[0].file"}},
		{name: "path in file", doc: `{"version":1,"dir":"/d","secrets":[{"file":"../etc/passwd","id":"x"}]}`, fields: []string{"secrets[0].file"}},
		{name: "duplicate file", doc: `{"version":1,"dir":"/d","secrets":[{"file":"a","id":"x"},{"file":"a","id":"y"}]}`, fields: []string{"secrets[1].file"}},
		{name: "empty id", doc: `{"version":1,"dir":"/d","secrets":[{"file":"a","id":""}]}`, fields: []string{"secrets[0].id"}},
		{name: "id with space", doc: `{"version":1,"dir":"/d","secrets":[{"file":"a","id":"my secret"}]}`, fields: []string{"secrets[0].id"}},
		{name: "arn of another service", doc: `{"version":1,"dir":"/d","secrets":[{"file":"a","id":"arn:aws:ssm:us-east-1:111122223333:parameter/x"}]}`, fields: []string{"secrets[0].id"}},
		{name: "empty key segment", doc: `{"version":1,"dir":"/d","secrets":[{"file":"a","id":"x","key":"db..password"}]}`, fields: []string{"secrets[0].key"}},
		{name: "stage and version id", doc: `{"version":1,"dir":"/d","secrets":[{"file":"a","id":"x","versionStage":"AWSCURRENT","versionId":"EXAMPLE1-90ab-cdef-fedc-ba987EXAMPLE"}]}`, fields: []string{"secrets[0].versionId"}},
		{name: "stage with space", doc: `{"version":1,"dir":"/d","secrets":[{"file":"a","id":"x","versionStage":"AWS CURRENT"}]}`, fields: []string{"secrets[0].versionStage"}},
		{name: "short version id", doc: `{"version":1,"dir":"/d","secrets":[{"file":"a","id":"x","versionId":"v1"}]}`, fields: []string{"secrets[0].versionId"}},
		{name: "writable mode", doc: `{"version":1,"dir":"/d","secrets":[{"file":"a","id":"x","mode":"0644"}]}`, fields: []string{"secrets[0].mode"}},
		{name: "bad pattern", doc: `{"version":1,"dir":"/d","secrets":[{"file":"a","id":"x","pattern":"("}]}`, fields: []string{"secrets[0].pattern"}},
		{name: "bad env name", doc: `{"version":1,"dir":"/d","envDir":"/e","secrets":[{"file":"a","id":"x","env":"1DB"}]}`, fields: []string{"secrets[0].env"}},
		{name: "env name with '..'", doc: `{"version":1,"dir":"/d","envDir":"/e","secrets":[{"file":"a","id":"x","env":"..DB"}]}`, fields: []string{"secrets[0].env"}},
		{name: "duplicate env", doc: `{"version":1,"dir":"/d","envDir":"/e","secrets":[{"file":"a","id":"x","env":"DB"},{"file":"b","id":"y","env":"DB"}]}`, fields: []string{"secrets[1].env"}},
		{name: "env without envDir", doc: `{"version":1,"dir":"/d","secrets":[{"file":"a","id":"x","env":"DB"}]}`, fields: []string{"envDir"}},
		{name: "envDir without env", doc: `{"version":1,"dir":"/d","envDir":"/e","secrets":[{"file":"a","id":"x"}]}`, fields: []string{"envDir"}},
		{name: "envDir inside dir", doc: `{"version":1,"dir":"/d","envDir":"/d/e","secrets":[{"file":"a","id":"x","env":"DB"}]}`, fields: []string{"envDir"}},
		{name: "dir inside envDir", doc: `{"version":1,"dir":"/e/d","envDir":"/e","secrets":[{"file":"a","id":"x","env":"DB"}]}`, fields: []string{"envDir"}},
		{name: "relative envDir", doc: `{"version":1,"dir":"/d","envDir":"e","secrets":[{"file":"a","id":"x","env":"DB"}]}`, fields: []string{"envDir"}},
		{name: "noFile without env", doc: `{"version":1,"dir":"/d","secrets":[{"file":"a","id":"x","noFile":true}]}`, fields: []string{"secrets[0].noFile"}},
		{name: "unknown format", doc: `{"version":1,"dir":"/d","secrets":[{"file":"a","id":"x","format":"toml"}]}`, fields: []string{"secrets[0].format"}},
		{name: "format with env", doc: `{"version":1,"dir":"/d","envDir":"/e","secrets":[{"file":"a","id":"x","format":"json","env":"DB"}]}`, fields: []string{"secrets[0].format"}},
		{name: "allowKeys without format", doc: `{"version":1,"dir":"/d","secrets":[{"file":"a","id":"x","allowKeys":["PATH"]}]}`, fields: []string{"secrets[0].allowKeys"}},
		{name: "allowKeys with json", doc: `{"version":1,"dir":"/d","secrets":[{"file":"a","id":"x","format":"json","allowKeys":["PATH"]}]}`, fields: []string{"secrets[0].allowKeys"}},
		{name: "allowKeys empty", doc: `{"version":1,"dir":"/d","secrets":[{"file":"a","id":"x","format":"dotenv","allowKeys":[]}]}`, fields: []string{"secrets[0].allowKeys"}},
		{name: "allowKeys not names", doc: `{"version":1,"dir":"/d","secrets":[{"file":"a","id":"x","format":"dotenv","allowKeys":["PATH","1X","","A B","PATH"]}]}`,
			fields: []string{"secrets[0].allowKeys[1]", "secrets[0].allowKeys[2]", "secrets[0].allowKeys[3]", "secrets[0].allowKeys[4]"}},
		{name: "allowKeys too many", doc: `{"version":1,"dir":"/d","secrets":[{"file":"a","id":"x","format":"dotenv","allowKeys":[` + strings.Repeat(`"A",`, plan.MaxAllowKeys) + `"B"]}]}`,
			fields: []string{"secrets[0].allowKeys"}},
		{
			name:   "every problem at once",
			doc:    `{"version":0,"dir":"","secrets":[{"file":"","id":"","mode":"0600"}]}`,
			fields: []string{"version", "dir", "secrets[0].file", "secrets[0].id", "secrets[0].mode"},
		},
		{name: "unknown field", doc: `{"version":1,"dir":"/d","secrets":[{"file":"a","id":"x","value":"oops"}]}`, substr: `unknown field "value"`},
		{name: "mode not octal", doc: `{"version":1,"dir":"/d","secrets":[{"file":"a","id":"x","mode":"rw"}]}`, substr: "not an octal file mode"},
		{name: "mode as number", doc: `{"version":1,"dir":"/d","secrets":[{"file":"a","id":"x","mode":256}]}`, substr: "secrets.mode"},
		{name: "trailing object", doc: `{"version":1,"dir":"/d","secrets":[{"file":"a","id":"x"}]} {}`, substr: "unexpected data"},
		{name: "trailing bracket", doc: `{"version":1,"dir":"/d","secrets":[{"file":"a","id":"x"}]}]`, substr: "unexpected data"},
		{name: "trailing brace", doc: `{"version":1,"dir":"/d","secrets":[{"file":"a","id":"x"}]}}`, substr: "unexpected data"},
		{name: "not json", doc: `dir=/d`, substr: "decoding plan"},
		{name: "empty", doc: ``, substr: "decoding plan"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := plan.Decode([]byte(tt.doc))
			if err == nil {
				t.Fatalf("Decode accepted the plan: %+v", p)
			}
			if tt.substr != "" {
				if !strings.Contains(err.Error(), tt.substr) {
					t.Errorf("error %q does not contain %q", err, tt.substr)
				}
				return
			}
			var ve *plan.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %v (%T) is not a *plan.ValidationError", err, err)
			}
			var got []string
			for _, fe := range ve.Errors {
				got = append(got, fe.Field)
				if !strings.Contains(err.Error(), fe.Field+": ") {
					t.Errorf("message %q does not name field %s", err, fe.Field)
				}
			}
			if !slices.Equal(got, tt.fields) {
				t.Errorf("fields = %q, want %q (error: %v)", got, tt.fields, err)
			}
		})
	}
}

// TestOutputsRoundTrip: env, env only and rendered files survive the wire.
func TestOutputsRoundTrip(t *testing.T) {
	p := &plan.Plan{Version: plan.Version, Dir: plan.DefaultDir, EnvDir: "/var/run/secretfetch-env", Region: "us-east-1",
		Secrets: []plan.Secret{
			{File: "db", ID: "prod/db", Key: "password", Env: "DB_PASSWORD", NoFile: true},
			{File: "api", ID: "prod/api", Env: "API_KEY"},
			{File: "app.env", ID: "prod/app", Format: plan.FormatDotenv, AllowKeys: []string{"PATH", "NODE_OPTIONS"}},
		}}
	enc, err := plan.Encode(p)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	for _, want := range []string{`"envDir":"/var/run/secretfetch-env"`, `"env":"DB_PASSWORD","noFile":true`, `"format":"dotenv","allowKeys":["PATH","NODE_OPTIONS"]`} {
		if !strings.Contains(enc, want) {
			t.Errorf("encoded plan %s lacks %s", enc, want)
		}
	}
	got, err := plan.Decode([]byte(enc))
	if err != nil {
		t.Fatalf("Decode(Encode(p)): %v", err)
	}
	if got.EnvDir != p.EnvDir || !reflect.DeepEqual(got.Secrets, p.Secrets) {
		t.Errorf("round trip changed the plan:\n got %+v\nwant %+v", got, p)
	}
}

func TestParseFormat(t *testing.T) {
	for _, f := range []string{"dotenv", "json", "properties", "yaml"} {
		if got, err := plan.ParseFormat(f); err != nil || string(got) != f {
			t.Errorf("ParseFormat(%q) = %q, %v", f, got, err)
		}
	}
	for _, f := range []string{"", "YAML", "env", "toml"} {
		_, err := plan.ParseFormat(f)
		if err == nil || !strings.Contains(err.Error(), "dotenv, json, properties, yaml") {
			t.Errorf("ParseFormat(%q) = %v, want an error that lists the formats", f, err)
		}
	}
}

func TestEncodeValidates(t *testing.T) {
	p := validPlan()
	p.Secrets[1].Mode = 0o600
	if _, err := plan.Encode(p); err == nil {
		t.Fatal("Encode accepted a writable mode")
	}
	var ve *plan.ValidationError
	_, err := plan.Encode(&plan.Plan{Version: 1, Dir: "/d"})
	if !errors.As(err, &ve) || len(ve.Errors) != 1 || ve.Errors[0].Field != "secrets" {
		t.Errorf("Encode(plan without secrets) = %v, want one error on secrets", err)
	}
}

func TestParseMode(t *testing.T) {
	tests := []struct {
		in      string
		want    plan.Mode
		wantErr string
	}{
		{in: "0400", want: 0o400},
		{in: "0440", want: 0o440},
		{in: "0444", want: 0o444},
		{in: "0644", wantErr: "not a read-only mode"},
		{in: "0600", wantErr: "not a read-only mode"},
		{in: "0000", wantErr: "not a read-only mode"},
		{in: "400", wantErr: "not an octal file mode"},
		{in: "00400", wantErr: "not an octal file mode"},
		{in: "0800", wantErr: "not an octal file mode"},
		{in: "0x100", wantErr: "not an octal file mode"},
		{in: "", wantErr: "not an octal file mode"},
		{in: "r--r--r--", wantErr: "not an octal file mode"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := plan.ParseMode(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseMode(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), "0400, 0440, 0444") {
					t.Errorf("error %q does not list the allowed modes", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseMode(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
			if got.String() != tt.in {
				t.Errorf("String() = %q, want %q", got.String(), tt.in)
			}
		})
	}
}

func TestModeMarshalText(t *testing.T) {
	if b, err := plan.Mode(0o444).MarshalText(); err != nil || string(b) != "0444" {
		t.Errorf("MarshalText(0444) = %q, %v", b, err)
	}
	if _, err := plan.Mode(0o755).MarshalText(); err == nil {
		t.Error("MarshalText(0755) succeeded; a writable mode must not be encoded")
	}
}

func TestFileMode(t *testing.T) {
	if got := (plan.Secret{}).FileMode(); got != fs.FileMode(0o400) {
		t.Errorf("default FileMode = %v, want 0400", got)
	}
	if got := (plan.Secret{Mode: 0o444}).FileMode(); got != fs.FileMode(0o444) {
		t.Errorf("FileMode = %v, want 0444", got)
	}
}

func TestRegionFor(t *testing.T) {
	p := &plan.Plan{Region: "us-east-1"}
	tests := []struct {
		id, want string
	}{
		{id: exampleARN, want: "eu-west-1"},
		{id: "arn:aws:secretsmanager:ap-southeast-2:111122223333:secret:prod/db", want: "ap-southeast-2"},
		{id: "prod/db", want: "us-east-1"},
		{id: "arn:aws:ssm:eu-west-1:111122223333:parameter/x", want: "us-east-1"},
	}
	for _, tt := range tests {
		if got := p.RegionFor(plan.Secret{ID: tt.id}); got != tt.want {
			t.Errorf("RegionFor(%q) = %q, want %q", tt.id, got, tt.want)
		}
	}
	if got := (&plan.Plan{}).RegionFor(plan.Secret{ID: "prod/db"}); got != "" {
		t.Errorf("RegionFor with no plan region = %q, want empty (the SDK's default applies)", got)
	}
}

func TestValidateName(t *testing.T) {
	long := strings.Repeat("a", plan.MaxNameLength)
	tests := []struct {
		name string
		ok   bool
	}{
		{"db", true}, {"api-key.txt", true}, {"A_1", true}, {"a", true}, {long, true},
		{long + "a", false}, {"", false}, {".", false}, {"..", false}, {".env", false},
		{"a/b", false}, {"a\\b", false}, {"a b", false}, {"a-", false}, {"-a", false}, {"a.", false}, {"é", false},
	}
	for _, tt := range tests {
		if err := plan.ValidateName(tt.name); (err == nil) != tt.ok {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestParseARN(t *testing.T) {
	a, err := plan.ParseARN(exampleARN)
	if err != nil {
		t.Fatalf("ParseARN: %v", err)
	}
	want := plan.ARN{Partition: "aws", Region: "eu-west-1", AccountID: "111122223333", Name: "prod/db-AbCdEf"}
	if a != want {
		t.Errorf("ParseARN = %+v, want %+v", a, want)
	}
	bad := map[string]string{
		"not an arn":       "prod/db",
		"too few parts":    "arn:aws:secretsmanager:us-east-1:111122223333:secret",
		"partition":        "arn:aws-xx:secretsmanager:us-east-1:111122223333:secret:x",
		"service":          "arn:aws:ssm:us-east-1:111122223333:secret:x",
		"region":           "arn:aws:secretsmanager:moon:111122223333:secret:x",
		"account":          "arn:aws:secretsmanager:us-east-1:1234:secret:x",
		"resource type":    "arn:aws:secretsmanager:us-east-1:111122223333:parameter:x",
		"name":             "arn:aws:secretsmanager:us-east-1:111122223333:secret:a b",
		"name with colons": "arn:aws:secretsmanager:us-east-1:111122223333:secret:a:b",
	}
	for what, s := range bad {
		if _, err := plan.ParseARN(s); err == nil {
			t.Errorf("ParseARN(%q) accepted a bad %s", s, what)
		}
	}
}

func TestValidateSecretID(t *testing.T) {
	for _, id := range []string{"prod/db", "a+b=c.d@e-f_g", exampleARN, "arn:aws-cn:secretsmanager:cn-north-1:111122223333:secret:x"} {
		if err := plan.ValidateSecretID(id); err != nil {
			t.Errorf("ValidateSecretID(%q) = %v", id, err)
		}
	}
	for _, id := range []string{"", "a b", "a#b", strings.Repeat("a", 513), "arn:aws:secretsmanager:us-east-1:1:secret:x"} {
		if err := plan.ValidateSecretID(id); err == nil {
			t.Errorf("ValidateSecretID(%q) accepted a bad ID", id)
		}
	}
}

func TestCompilePatternMatchesWholeValue(t *testing.T) {
	re, err := plan.CompilePattern("[a-z]+|[0-9]+")
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]bool{"abc": true, "123": true, "abc123": false, "abc\n": false, "": false} {
		if got := re.MatchString(in); got != want {
			t.Errorf("match(%q) = %v, want %v", in, got, want)
		}
	}
	if _, err := plan.CompilePattern("(?P<x"); err == nil {
		t.Error("CompilePattern accepted an invalid pattern")
	}
}

func TestKeyPath(t *testing.T) {
	if got := plan.KeyPath("db.primary.password"); !slices.Equal(got, []string{"db", "primary", "password"}) {
		t.Errorf("KeyPath = %q", got)
	}
	for _, k := range []string{"", ".a", "a.", "a b", "a..b"} {
		if err := plan.ValidateKeyPath(k); err == nil {
			t.Errorf("ValidateKeyPath(%q) accepted a bad path", k)
		}
	}
}

// TestValidatePatternAgreesWithCompile: the webhook validates with the cheap
// parse, init-fetch compiles; a pattern one accepts the other must accept.
func TestValidatePatternAgreesWithCompile(t *testing.T) {
	for _, p := range []string{
		`^[A-Za-z0-9]+$`, `[a-z]+|[0-9]+`, `(?i)secret-\d{4}`, `\p{Greek}+`, `.*`, ``,
		`(`, `[z-a]`, `a**`, `(?P<x`, `\8`, `a{1001}`, `(a{500}){500}`, `(?<name>x)`, `x{2,1}`, `\C`,
	} {
		verr := plan.ValidatePattern(p)
		_, cerr := plan.CompilePattern(p)
		if (verr == nil) != (cerr == nil) {
			t.Errorf("pattern %q: ValidatePattern error %v, CompilePattern error %v", p, verr, cerr)
		}
	}
}

func TestFailoverFor(t *testing.T) {
	p := validPlan()
	p.FailoverRegion = "us-west-2"
	if err := p.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	for _, tc := range []struct {
		id, region, wantID string
	}{
		{"prod/api_key", "us-west-2", "prod/api_key"},
		{exampleARN, "us-west-2", "arn:aws:secretsmanager:us-west-2:111122223333:secret:prod/db-AbCdEf"},
		{"arn:aws:secretsmanager:us-west-2:111122223333:secret:local", "", ""}, // lives in the failover region
	} {
		region, id := p.FailoverFor(plan.Secret{File: "f", ID: tc.id})
		if region != tc.region || id != tc.wantID {
			t.Errorf("FailoverFor(%s) = %q, %q; want %q, %q", tc.id, region, id, tc.region, tc.wantID)
		}
	}
	p.FailoverRegion = ""
	if region, _ := p.FailoverFor(plan.Secret{ID: "x"}); region != "" {
		t.Errorf("no failover region: FailoverFor = %q, want none", region)
	}
}

func TestFailoverRegionInvalid(t *testing.T) {
	for _, region := range []string{"us-east-1", "mars", "US-WEST-2"} {
		p := validPlan()
		p.FailoverRegion = region
		err := p.Validate()
		if err == nil || !strings.Contains(err.Error(), "failoverRegion:") {
			t.Errorf("failoverRegion %q: Validate = %v, want an error naming failoverRegion", region, err)
		}
	}
}
