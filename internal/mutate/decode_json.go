package mutate

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	segjson "github.com/segmentio/encoding/json"
	sigsjson "sigs.k8s.io/json"
)

// decodeJSON decodes a review as sigs.k8s.io/json's case-sensitive decoder
// (the API server's) does, at about 2.5 times its speed on a real review:
// decoding the pod was most of a review's CPU time. segmentio/encoding's
// decoder, with DontMatchCaseInsensitiveStructFields, matches field names
// exactly ("Annotations" is not annotations), lets the last of duplicate
// keys win and ignores unknown fields, as the API server's decoder does, and
// calls the UnmarshalJSON methods of the Kubernetes types (quantities,
// times, raw extensions), which copy what they keep. Strings are copied too
// (no ZeroCopy): the body's buffer is reused for the answer.
//
// A value of the wrong type is refused with the error that sigs.k8s.io/json
// gives, less the value: segmentio's quotes the body from there on. Any
// other refusal (a syntax error, or a value that only segmentio refuses) is
// decoded again by sigs.k8s.io/json, whose answer then stands: sigs checks
// the syntax before it allocates, so a body that is not JSON costs one more
// scan, and a review that the API server sends, which decodes, is never
// refused by segmentio alone. FuzzHandler holds the pair to decodePod,
// sigs.k8s.io/json alone: a pod that it refuses must be refused, and the
// patch must give the pod that Apply makes of its decoding.
func decodeJSON[T any](data []byte, v *T) error {
	_, err := segjson.Parse(data, v, segjson.DontMatchCaseInsensitiveStructFields)
	if err == nil {
		return nil
	}
	if te := (*json.UnmarshalTypeError)(nil); errors.As(err, &te) && te.Type != nil {
		return fmt.Errorf("json: cannot unmarshal %s into Go struct field %s of type %s", jsonKind(te.Value), te.Field, te.Type)
	}
	var zero T
	*v = zero
	return sigsjson.UnmarshalCaseSensitivePreserveInts(data, v)
}

// jsonKind names the kind of JSON value that segmentio's UnmarshalTypeError
// quotes the start of ("\"0,1]}\"", or "number 1e999 overflows").
func jsonKind(value string) string {
	if strings.HasPrefix(value, "number ") {
		return "number"
	}
	if v, err := strconv.Unquote(value); err == nil {
		value = v
	}
	if value == "" {
		return "value"
	}
	switch c := value[0]; {
	case c == '"':
		return "string"
	case c == '{':
		return "object"
	case c == '[':
		return "array"
	case c == 't' || c == 'f':
		return "bool"
	case c == 'n':
		return "null"
	default:
		return "number"
	}
}
