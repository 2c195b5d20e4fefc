package mutate

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"unicode/utf8"
)

// Bounds on a review, checked on its raw bytes before anything is decoded.
// Decoding turns a few bytes of JSON into a much larger Go value: "null," in
// spec.containers becomes a 408-byte corev1.Container, and a slice grows by
// copying, so that a 3.5 MiB review of nulls took 1.7 GiB. Counting objects
// (as an earlier bound did) misses nulls, numbers and strings, so what is
// counted here is every value the decoder stores: each array element and
// each object member. Real reviews are far below these caps; the figures are
// in docs/benchmarks.md.
const (
	// maxReviewValues caps the array elements and object members of a
	// review, counted together. A real pod review is a few KiB and a few
	// hundred values. The largest real pods stay under half the cap: one of
	// 256 containers (each about 20 values with its managedFields entry)
	// and 1,500 env vars (3 values each, 4 more in managedFields) holds
	// about 16,000 (TestReviewBoundsAdmitLargePods builds it). The cap
	// bounds what the weights below do not see, maps above all: a member
	// of annotations costs about 20 times its bytes.
	maxReviewValues = 32 << 10
	// maxArrayLength caps the elements of any one array. It leaves room for
	// 1,500 env vars in one container, more than real pods carry; an
	// opted-in pod may have at most 256 containers anyway (MaxContainers).
	maxArrayLength = 2 << 10
	// maxReviewDepth caps the nesting of arrays and objects. The deepest
	// path in a pod review (a managedFields entry for an affinity term's
	// values) is about 20 levels. The decoder itself allows 10,000, on the
	// stack of the request's goroutine.
	maxReviewDepth = 64
	// The structs that the decoder allocates for a review, weighed by
	// the Go type of the field that holds each value (see allocSizes): each
	// element of an array, and the target of a pointer, may take at most
	// allocBytesPerByte times the body's length plus allocBytesFloor. This
	// is what makes a review's cost proportional to its size: within the
	// counts above, 2,048 nulls in containers (10 KiB) would still decode to
	// 3 MiB, and empty volume sources ("csi":{},"iscsi":{}) to 40 times
	// their bytes. A real review's structs weigh about its size past the
	// first 2 KiB (the benchmark's pod: 1.2 times): a container from the API
	// server carries at least 150 bytes of JSON for its 408, with a
	// managedFields entry as large again. The floor alone admits 600
	// containers.
	allocBytesPerByte = 4
	allocBytesFloor   = 256 << 10
)

// allocSizes maps the JSON name of every field in a pod's review that makes
// the decoder allocate a struct to what it allocates: for a slice, the Go
// size of its element; for a pointer to a struct, the size of the struct
// (the largest where fields of one name differ). An array or object under
// any other name is skipped by the decoder or is the value of a map:
// otherAlloc weighs those (userInfo.extra holds slices of strings).
var allocSizes, otherAlloc = decodedSizes(reflect.TypeFor[podReview]())

// allocSize is what the decoder allocates for one element of an array, or
// for the object that a pointer points to.
type allocSize struct{ element, pointee int }

func decodedSizes(root reflect.Type) (sizes map[string]allocSize, other allocSize) {
	sizes = map[string]allocSize{}
	seen := map[reflect.Type]bool{}
	record := func(name string, a allocSize) {
		if name == "" {
			other = allocSize{max(other.element, a.element), max(other.pointee, a.pointee)}
		} else {
			s := sizes[name]
			sizes[name] = allocSize{max(s.element, a.element), max(s.pointee, a.pointee)}
		}
	}
	var walk func(t reflect.Type, name string)
	walk = func(t reflect.Type, name string) {
		if t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct {
			record(name, allocSize{pointee: int(t.Elem().Size())})
		}
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch t.Kind() {
		case reflect.Slice:
			if t.Elem().Kind() == reflect.Uint8 {
				return // []byte decodes from a base64 string
			}
			record(name, allocSize{element: int(t.Elem().Size())})
			walk(t.Elem(), "")
		case reflect.Map, reflect.Array:
			walk(t.Elem(), "")
		case reflect.Struct:
			if seen[t] {
				return
			}
			seen[t] = true
			for i := range t.NumField() {
				f := t.Field(i)
				tag := f.Tag.Get("json")
				if tag == "-" || (!f.IsExported() && !f.Anonymous) {
					continue
				}
				name, _, _ := strings.Cut(tag, ",")
				switch {
				case name != "":
				case f.Anonymous:
					// An embedded struct's fields are the outer struct's.
					walk(f.Type, "")
					continue
				default:
					name = f.Name
				}
				walk(f.Type, name)
			}
		}
	}
	walk(root, "")
	return sizes, other
}

// reviewTooLarge says which bound a review went past.
type reviewTooLarge struct{ what string }

func (e *reviewTooLarge) Error() string {
	return "the review is beyond the webhook's bounds: " + e.what
}

// checkReviewBounds refuses a review beyond the bounds above. It reads body
// once, allocates nothing unless it refuses, and stops at the first bound
// passed. It counts right for valid JSON only: anything else fails to decode
// afterwards, before the decoder allocates (it checks the syntax first).
func checkReviewBounds(body []byte) error {
	var (
		// For each open array, the Go size of its element, and its
		// elements so far; elemSize is -1 for an object.
		elemSize [maxReviewDepth]int32
		length   [maxReviewDepth]int32
		depth    int
		values   int
		allocs   int // bytes of the structs the decoder will allocate
		budget   = allocBytesPerByte*len(body) + allocBytesFloor
		// key is the last string read: the name of a member when a colon
		// follows it.
		keyStart, keyEnd int
		afterColon       bool
		// opened: the last token opened an array or object, so the next
		// one starts its first value, unless it closes it.
		opened bool
	)
	alloc := func(size int) error {
		if allocs += size; allocs > budget {
			return &reviewTooLarge{fmt.Sprintf("values that would decode to more than %d bytes of structs (%d times the body's %d bytes, plus %d)",
				budget, allocBytesPerByte, len(body), allocBytesFloor)}
		}
		return nil
	}
	// count records a value in the innermost array or object.
	count := func() error {
		if depth == 0 {
			return nil
		}
		if values++; values > maxReviewValues {
			return &reviewTooLarge{fmt.Sprintf("more than %d JSON values (array elements and object members)", maxReviewValues)}
		}
		size := int(elemSize[depth-1])
		if size < 0 {
			return nil
		}
		if length[depth-1]++; length[depth-1] > maxArrayLength {
			return &reviewTooLarge{fmt.Sprintf("an array of more than %d elements", maxArrayLength)}
		}
		return alloc(size)
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		if opened {
			opened = false
			if c != ']' && c != '}' {
				if err := count(); err != nil {
					return err
				}
			}
		}
		member := afterColon
		afterColon = false
		switch c {
		case '"':
			// Skip to the closing quote: one not preceded by an odd run of
			// backslashes.
			start := i + 1
			for {
				j := bytes.IndexByte(body[i+1:], '"')
				if j < 0 {
					return nil // unterminated: not JSON
				}
				i += 1 + j
				backslashes := 0
				for k := i - 1; k >= start && body[k] == '\\'; k-- {
					backslashes++
				}
				if backslashes%2 == 0 {
					break
				}
			}
			keyStart, keyEnd = start, i
		case ':':
			afterColon = true
		case '[', '{':
			if depth == maxReviewDepth {
				return &reviewTooLarge{fmt.Sprintf("arrays and objects nested more than %d deep", maxReviewDepth)}
			}
			size := otherAlloc
			if member {
				size = allocFor(body[keyStart:keyEnd])
			}
			elemSize[depth], length[depth] = -1, 0
			if c == '[' {
				elemSize[depth] = int32(size.element)
			} else if err := alloc(size.pointee); err != nil {
				return err
			}
			depth++
			opened = true
		case ']', '}':
			if depth > 0 {
				depth--
			}
		case ',':
			if err := count(); err != nil {
				return err
			}
		}
	}
	return nil
}

// allocFor is what the decoder allocates for the value of the member named
// key (its raw JSON bytes).
func allocFor(key []byte) allocSize {
	if bytes.IndexByte(key, '\\') >= 0 {
		// The decoder matches a name once unescaped: "\u0063ontainers" is
		// containers. Keys with escapes are common in managedFields
		// ("k:{\"name\":\"app\"}"), so they are not all weighed as the worst.
		var buf [maxFieldName]byte
		name, ok := unescapeName(key, buf[:0])
		if !ok {
			return otherAlloc
		}
		key = name
	}
	if size, ok := allocSizes[string(key)]; ok {
		return size
	}
	return otherAlloc
}

// maxFieldName is longer than the JSON name of any field in a pod's review
// (TestAllocFor checks it).
const maxFieldName = 64

// unescapeName appends to buf the ASCII name that the escaped JSON string
// key spells, and reports false when key cannot spell the name of a field:
// a name is ASCII and shorter than maxFieldName, and buf does not grow.
func unescapeName(key, buf []byte) ([]byte, bool) {
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c == '\\' {
			if i+1 >= len(key) {
				return nil, false
			}
			i++
			switch key[i] {
			case 'u':
				if i+4 >= len(key) {
					return nil, false
				}
				r, ok := hex4(key[i+1 : i+5])
				if !ok || r >= utf8.RuneSelf {
					return nil, false
				}
				c, i = byte(r), i+4
			case '"', '\\', '/':
				c = key[i]
			default:
				return nil, false // a control character
			}
		}
		if c >= utf8.RuneSelf || len(buf) == cap(buf) {
			return nil, false
		}
		buf = append(buf, c)
	}
	return buf, true
}

// hex4 reads four hex digits.
func hex4(b []byte) (rune, bool) {
	var r rune
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
