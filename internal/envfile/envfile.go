// Package envfile writes the env file that the kubelet reads the values of
// env[].valueFrom.fileKeyRef from (the EnvFiles feature).
//
// The format is the one that the kubelet's parser (pkg/kubelet/util/env in
// the Kubernetes version this project pins) reads: one NAME='value' entry
// per variable, the value in single quotes with no escapes, new lines inside
// the quotes kept. That parser decides what a value can be, so Encode
// refuses every value it would not hand back unchanged, and every value the
// container runtime cannot pass on, rather than let a container start with a
// different value than the secret holds:
//
//   - a single quote: it ends the quoted value, and there is no escape;
//   - a carriage return before a line feed: the parser reads lines with
//     bufio.ScanLines, which drops it;
//   - a line of the entry longer than MaxLine bytes: bufio.Scanner's limit
//     (64 KiB with the new line), past which the whole file fails to parse;
//   - the empty value: the kubelet takes an empty value for a missing key and
//     fails the container;
//   - a NUL byte: no environment variable can hold one (execve ends the
//     string there);
//   - bytes that are not UTF-8: the kubelet hands the value to the runtime
//     as a protobuf string, which must be UTF-8.
//
// The package does no I/O; init-fetch writes the bytes with package tmpfs.
package envfile

import (
	"bytes"
	"errors"
	"fmt"
	"unicode/utf8"
)

// MaxLine is the longest line, without its new line, that the kubelet's
// parser reads: bufio.Scanner's MaxScanTokenSize (64 KiB) holds the line and
// its new line.
const MaxLine = 64<<10 - 1

// CodeUnsupportedValue is the failure code of a value that an env file cannot
// carry; init-fetch puts it into the termination message.
const CodeUnsupportedValue = "UnsupportedEnvValue"

// CodeBinaryValue is the failure code of a secret that holds SecretBinary,
// which init-fetch never writes into a variable (ErrBinary), even when its
// bytes would pass Check.
const CodeBinaryValue = "BinaryEnvValue"

// ErrBinary is the reason for CodeBinaryValue.
var ErrBinary = errors.New("the secret holds SecretBinary, which an environment variable cannot carry; use a file")

// Var is one environment variable. Its value is secret; its name is not.
type Var struct {
	// Name is the key in the file: a name that plan.ValidateEnvName accepts
	// (no '=', no white space, not starting with '#').
	Name  string
	Value []byte
}

// Errors the Reason of a ValueError wraps, for errors.Is.
var (
	ErrQuote    = errors.New("it contains a single quote, which ends the kubelet's quoted value and has no escape")
	ErrCRLF     = errors.New("it contains a carriage return before a line feed, which the kubelet's line reader drops")
	ErrLongLine = fmt.Errorf("it has a line longer than the kubelet's env file parser reads (%d bytes with the name)", MaxLine)
	ErrEmpty    = errors.New("it is empty, and the kubelet takes an empty value for a missing key")
	ErrNUL      = errors.New("it contains a NUL byte, which no environment variable can hold")
	ErrNotUTF8  = errors.New("it is not valid UTF-8, which the container runtime API cannot carry")
	ErrName     = errors.New("the name is not one the env file can carry (empty, or with '=', white space, a control character, or a leading '#')")
)

// ValueError says why one variable cannot go into an env file. It names the
// variable and never holds the value.
type ValueError struct {
	Name   string
	Reason error
}

func (e *ValueError) Error() string {
	return fmt.Sprintf("environment variable %s: %s: %v", e.Name, CodeUnsupportedValue, e.Reason)
}

func (e *ValueError) Unwrap() error { return e.Reason }

// Check returns nil when an entry for name and value reads back unchanged,
// and otherwise the reason it would not (one of the Err values).
func Check(name string, value []byte) error {
	if !validName(name) {
		return ErrName
	}
	switch {
	case len(value) == 0:
		return ErrEmpty
	case bytes.IndexByte(value, '\'') >= 0:
		return ErrQuote
	case bytes.IndexByte(value, 0) >= 0:
		return ErrNUL
	case !utf8.Valid(value):
		return ErrNotUTF8
	case bytes.Contains(value, []byte("\r\n")):
		return ErrCRLF
	}
	// The first line carries NAME=' in front, the last one the closing
	// quote after it.
	lines := bytes.Split(value, []byte("\n"))
	for i, l := range lines {
		n := len(l)
		if i == 0 {
			n += len(name) + 2
		}
		if i == len(lines)-1 {
			n++
		}
		if n > MaxLine {
			return ErrLongLine
		}
	}
	return nil
}

// validName: what the parser reads back as the key of a line. It cuts at
// the first '=', refuses white space before it, and skips a line that starts
// with '#' or white space.
func validName(name string) bool {
	if name == "" || name[0] == '#' {
		return false
	}
	for i := range len(name) {
		if b := name[i]; b <= ' ' || b == '=' || b == 0x7f {
			return false
		}
	}
	return true
}

// Encode returns the env file for vars, in their order. It refuses the whole
// file if any variable cannot be carried, with an error that joins one
// *ValueError per such variable. The caller zeroes the returned bytes after
// writing them.
func Encode(vars []Var) ([]byte, error) {
	var errs []error
	size := 0
	seen := make(map[string]bool, len(vars))
	for _, v := range vars {
		if err := Check(v.Name, v.Value); err != nil {
			errs = append(errs, &ValueError{Name: v.Name, Reason: err})
			continue
		}
		if seen[v.Name] {
			// The parser returns the first entry of a name; a second one
			// would be silently ignored.
			errs = append(errs, fmt.Errorf("environment variable %s is given twice", v.Name))
			continue
		}
		seen[v.Name] = true
		size += len(v.Name) + len(v.Value) + len("=''\n")
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	// One allocation, so that no half-grown copy of a value is left behind.
	buf := make([]byte, 0, size)
	for _, v := range vars {
		buf = append(buf, v.Name...)
		buf = append(buf, "='"...)
		buf = append(buf, v.Value...)
		buf = append(buf, "'\n"...)
	}
	return buf, nil
}
