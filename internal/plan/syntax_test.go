package plan

import (
	"regexp"
	"strings"
	"testing"
)

// The expressions that the byte loops in syntax.go stand for.
var syntaxRegexps = []struct {
	name  string
	re    *regexp.Regexp
	match func(string) bool
}{
	{"isName", regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$`), isName},
	{"isRegion", regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d+$`), isRegion},
	{"isStage", regexp.MustCompile(`^[^\s]{1,256}$`), isStage},
	{"isVersionID", regexp.MustCompile(`^[A-Za-z0-9-]{32,64}$`), isVersionID},
	{"isSecretName", regexp.MustCompile(`^[A-Za-z0-9/_+=.@-]{1,512}$`), isSecretName},
	{"isKeySegment", regexp.MustCompile(`^[^.\s]+$`), isKeySegment},
	{"isAccountID", regexp.MustCompile(`^\d{12}$`), isAccountID},
	{"isEnvName", regexp.MustCompile(`^[-._a-zA-Z][-._a-zA-Z0-9]*$`), isEnvName},
	{"isShellName", regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`), isShellName},
}

var syntaxSeeds = []string{
	"", "a", "A", "0", ".", "-", "_", "a.b", "a-", "-a", ".a", "a.", "db_password", "a..b",
	"us-east-1", "us-gov-west-1", "cn-north-1", "u-east-1", "us-east-", "us--1", "us-1", "US-east-1",
	"us-east-1a", "eu-central-12", "AWSCURRENT", "AWS PREVIOUS", "stage\t", "é", "\xff",
	strings.Repeat("a", 31), strings.Repeat("a", 32), strings.Repeat("a", 64), strings.Repeat("a", 65),
	strings.Repeat("é", 256), strings.Repeat("é", 257), strings.Repeat("b", 512), strings.Repeat("b", 513),
	"prod/db+x=y@z.-_", "prod db", "prod:db", "111122223333", "11112222333", "1111222233334", "11112222333a",
	"db.password", "db password", "line\nbreak", "form\ffeed", "\v",
	"DB_PASSWORD", "1DB", "db.pass-word_2", "DB=X", "DB X", "..x", "_JAVA_OPTIONS", "_", "_1", "LD_PRELOAD", "A-B",
}

// TestSyntaxMatchesRegexp: each byte loop accepts exactly what its
// expression matches.
func TestSyntaxMatchesRegexp(t *testing.T) {
	for _, s := range syntaxSeeds {
		for _, r := range syntaxRegexps {
			if got, want := r.match(s), r.re.MatchString(s); got != want {
				t.Errorf("%s(%q) = %v, but %s matches: %v", r.name, s, got, r.re, want)
			}
		}
	}
}

func FuzzSyntaxMatchesRegexp(f *testing.F) {
	for _, s := range syntaxSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, r := range syntaxRegexps {
			if got, want := r.match(s), r.re.MatchString(s); got != want {
				t.Errorf("%s(%q) = %v, but %s matches: %v", r.name, s, got, r.re, want)
			}
		}
	})
}
