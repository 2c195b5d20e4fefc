// Package clip cuts text to a budget of bytes without splitting a UTF-8
// sequence. It uses the standard library only, so that the webhook (which
// must not import AWS packages) and init-fetch (which must not link
// k8s.io/*) both bound their messages with the same code.
package clip

import "unicode/utf8"

// String cuts s to at most n bytes, dropping any partial UTF-8 sequence at
// the cut.
func String(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cutting before s[n] is safe when s[n] starts a character.
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Marked cuts s to at most n bytes as String does, and ends a cut string
// with mark when n leaves room for more than the mark.
func Marked(s string, n int, mark string) string {
	if len(s) <= n {
		return s
	}
	if n > len(mark) {
		return String(s, n-len(mark)) + mark
	}
	return String(s, n)
}
