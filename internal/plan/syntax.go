package plan

import (
	"strings"
	"unicode/utf8"
)

// The shapes of the plan's strings. Each is a loop over the bytes rather
// than a regular expression: the webhook checks every field of every plan it
// encodes, and Go's regexp engine made these checks a tenth of its time per
// pod. The expression each one matches is in its comment, and
// TestSyntaxMatchesRegexp holds each to it.

func isLower(b byte) bool { return 'a' <= b && b <= 'z' }
func isDigit(b byte) bool { return '0' <= b && b <= '9' }
func isAlnum(b byte) bool { return isLower(b) || 'A' <= b && b <= 'Z' || isDigit(b) }

// isSpace is RE2's \s: ASCII white space only.
func isSpace(b byte) bool {
	return b == ' ' || b == '\t' || b == '\n' || b == '\f' || b == '\r'
}

// all reports whether s is not empty and every byte of it is ok.
func all(s string, ok func(byte) bool) bool {
	for i := range len(s) {
		if !ok(s[i]) {
			return false
		}
	}
	return s != ""
}

// isName: ^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$
func isName(s string) bool {
	return all(s, func(b byte) bool { return isAlnum(b) || b == '.' || b == '_' || b == '-' }) &&
		isAlnum(s[0]) && isAlnum(s[len(s)-1])
}

// isRegion: ^[a-z]{2}(-[a-z]+)+-\d+$, such as us-east-1 or us-gov-west-1.
func isRegion(s string) bool {
	parts := strings.Split(s, "-")
	if len(parts) < 3 || len(parts[0]) != 2 {
		return false
	}
	for _, p := range parts[:len(parts)-1] {
		if !all(p, isLower) {
			return false
		}
	}
	return all(parts[len(parts)-1], isDigit)
}

// isStage: ^[^\s]{1,256}$ (256 characters, not bytes).
func isStage(s string) bool {
	return all(s, func(b byte) bool { return !isSpace(b) }) && utf8.RuneCountInString(s) <= 256
}

// IsVersionID reports whether s has the shape of a Secrets Manager version
// ID: 32 to 64 letters, digits and '-' (AWS documents the length; its IDs
// are UUIDs). Version IDs in the plan and in Secrets Manager's answers are
// held to it.
func IsVersionID(s string) bool { return isVersionID(s) }

// isVersionID: ^[A-Za-z0-9-]{32,64}$
func isVersionID(s string) bool {
	return 32 <= len(s) && len(s) <= 64 && all(s, func(b byte) bool { return isAlnum(b) || b == '-' })
}

// isSecretName: ^[A-Za-z0-9/_+=.@-]{1,512}$. AWS documents this set of
// characters for a secret name, and 512 as its longest.
func isSecretName(s string) bool {
	return len(s) <= 512 && all(s, func(b byte) bool { return isAlnum(b) || strings.IndexByte("/_+=.@-", b) >= 0 })
}

// isKeySegment: ^[^.\s]+$
func isKeySegment(s string) bool {
	return all(s, func(b byte) bool { return b != '.' && !isSpace(b) })
}

// isAccountID: ^\d{12}$
func isAccountID(s string) bool { return len(s) == 12 && all(s, isDigit) }

// isEnvName: ^[-._a-zA-Z][-._a-zA-Z0-9]*$, the Kubernetes API's
// IsEnvVarName without its '.' and '..' rule.
func isEnvName(s string) bool {
	return all(s, func(b byte) bool { return isAlnum(b) || b == '_' || b == '-' || b == '.' }) && !isDigit(s[0])
}

// isShellName: ^[A-Za-z_][A-Za-z0-9_]*$, a POSIX shell variable name.
func isShellName(s string) bool {
	return all(s, func(b byte) bool { return isAlnum(b) || b == '_' }) && !isDigit(s[0])
}
