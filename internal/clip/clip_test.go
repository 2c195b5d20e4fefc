package clip

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestString(t *testing.T) {
	tests := []struct {
		s    string
		n    int
		want string
	}{
		{"abc", 3, "abc"},
		{"abc", 5, "abc"},
		{"abcdef", 3, "abc"},
		{"abc", 0, ""},
		{"aé", 2, "a"}, // é is two bytes: not split
		{"aé", 3, "aé"},
		{"a€b", 3, "a"}, // € is three bytes
		{"a€b", 4, "a€"},
		{"€", 2, ""},
	}
	for _, tt := range tests {
		if got := String(tt.s, tt.n); got != tt.want {
			t.Errorf("String(%q, %d) = %q, want %q", tt.s, tt.n, got, tt.want)
		}
	}
}

func TestMarked(t *testing.T) {
	tests := []struct {
		s, mark string
		n       int
		want    string
	}{
		{"abcdef", "...", 6, "abcdef"},
		{"abcdefg", "...", 6, "abc..."},
		{"aéééé", "...", 6, "aé..."}, // a cut inside the second é drops it
		{"abcdefg", "...", 4, "a..."},
		// No room for the mark and some text: the text alone.
		{"abcdefg", "...", 3, "abc"},
		{"abcdefg", "...", 1, "a"},
		{"abcdefg", " [truncated]", 5, "abcde"},
		{strings.Repeat("x", 30), " [truncated]", 20, "xxxxxxxx [truncated]"},
	}
	for _, tt := range tests {
		got := Marked(tt.s, tt.n, tt.mark)
		if got != tt.want {
			t.Errorf("Marked(%q, %d, %q) = %q, want %q", tt.s, tt.n, tt.mark, got, tt.want)
		}
		if len(got) > tt.n || !utf8.ValidString(got) {
			t.Errorf("Marked(%q, %d, %q) = %q: over the budget or not UTF-8", tt.s, tt.n, tt.mark, got)
		}
	}
}
