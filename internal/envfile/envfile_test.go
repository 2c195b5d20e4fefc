package envfile

import (
	"errors"
	"strings"
	"testing"
)

// The round trips through the kubelet's own parser are in hack/kubeletenv
// (its own module, because it needs k8s.io/kubernetes); these check the
// format and the errors.

func TestEncodeFormat(t *testing.T) {
	got, err := Encode([]Var{{Name: "A", Value: []byte("x y")}, {Name: "B.c-d", Value: []byte("l1\nl2#=\"")}})
	if err != nil {
		t.Fatal(err)
	}
	if want := "A='x y'\nB.c-d='l1\nl2#=\"'\n"; string(got) != want {
		// The bytes hold values: say where they differ, not what they are.
		t.Errorf("Encode wrote %d bytes, want %d; they differ from byte %d", len(got), len(want), firstDiff(string(got), want))
	}
	if cap(got) != len(got) {
		t.Errorf("Encode grew its buffer (cap %d, len %d); it sizes it once", cap(got), len(got))
	}
}

func TestEncodeRefuses(t *testing.T) {
	tests := []struct {
		name, value string
		want        error
	}{
		{"A", "it's", ErrQuote},
		{"A", "a\r\nb", ErrCRLF},
		{"A", "", ErrEmpty},
		{"A", "a\x00", ErrNUL},
		{"A", "\xc3", ErrNotUTF8},
		{"A", strings.Repeat("x", MaxLine), ErrLongLine},
		{"A=B", "v", ErrName},
		{"#A", "v", ErrName},
		{"A B", "v", ErrName},
		{"", "v", ErrName},
	}
	for _, tt := range tests {
		_, err := Encode([]Var{{Name: tt.name, Value: []byte(tt.value)}})
		var ve *ValueError
		if !errors.Is(err, tt.want) || !errors.As(err, &ve) || ve.Name != tt.name {
			t.Errorf("Encode(%q, %d-byte value) = %v, want %v naming the variable", tt.name, len(tt.value), err, tt.want)
		}
	}
}

func TestEncodeNamesEveryVariableAndNoValue(t *testing.T) {
	_, err := Encode([]Var{
		{Name: "ONE", Value: []byte("o'ne")}, {Name: "TWO", Value: []byte("fine")}, {Name: "THREE", Value: []byte("t'hree")},
		{Name: "TWO", Value: []byte("again")},
	})
	if err == nil {
		t.Fatal("Encode accepted single quotes")
	}
	msg := err.Error()
	for _, want := range []string{"ONE: " + CodeUnsupportedValue, "THREE: " + CodeUnsupportedValue, "TWO is given twice"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the error (%d bytes) lacks %q", len(msg), want)
		}
	}
	for _, v := range []string{"o'ne", "t'hree", "fine", "again"} {
		if strings.Contains(msg, v) {
			t.Errorf("the error holds the value of a variable (%d bytes)", len(v))
		}
	}
}

// firstDiff is the index of the first byte where a and b differ.
func firstDiff(a, b string) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return i
}
