package grammar

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// ErrorType says what kind of problem an Error is. The values are those of
// k8s.io/apimachinery's field.ErrorType, so that the webhook converts an
// Error into a field.Error by copying it.
type ErrorType string

// The kinds of problem the grammar reports.
const (
	ErrorTypeRequired     ErrorType = "FieldValueRequired"
	ErrorTypeDuplicate    ErrorType = "FieldValueDuplicate"
	ErrorTypeInvalid      ErrorType = "FieldValueInvalid"
	ErrorTypeNotSupported ErrorType = "FieldValueNotSupported"
	ErrorTypeForbidden    ErrorType = "FieldValueForbidden"
	ErrorTypeTooMany      ErrorType = "FieldValueTooMany"
	ErrorTypeInternal     ErrorType = "InternalError"
)

// String is the phrase that starts the problem's text.
func (t ErrorType) String() string {
	switch t {
	case ErrorTypeRequired:
		return "Required value"
	case ErrorTypeDuplicate:
		return "Duplicate value"
	case ErrorTypeInvalid:
		return "Invalid value"
	case ErrorTypeNotSupported:
		return "Unsupported value"
	case ErrorTypeForbidden:
		return "Forbidden"
	case ErrorTypeTooMany:
		return "Too many"
	case ErrorTypeInternal:
		return "Internal error"
	}
	return fmt.Sprintf("<unknown error %q>", string(t))
}

// OmitValueType marks an Error whose text does not quote the bad value,
// because the detail already does (the plan package's messages quote it).
type OmitValueType struct{}

// Omit is the BadValue of an Error that quotes no value.
var Omit = OmitValueType{}

// Error is one problem with a pod: the field it is on (for an annotation,
// metadata.annotations[<key>]), the bad value, and what is wrong and what
// is allowed. It has the shape and the text of a field.Error.
type Error struct {
	Type ErrorType
	// Field is the path of the field, e.g.
	// metadata.annotations[secretfetch.io/secret-db].
	Field string
	// BadValue is a string, an int, or Omit.
	BadValue any
	Detail   string
}

// Error is the problem's text, as field.Error writes it.
func (e *Error) Error() string { return e.Field + ": " + e.Body() }

// Body is the text without the field, as field.Error's ErrorBody.
func (e *Error) Body() string {
	s := e.Type.String()
	switch e.Type {
	case ErrorTypeRequired, ErrorTypeForbidden, ErrorTypeInternal:
	default:
		switch v := e.BadValue.(type) {
		case OmitValueType:
		case string:
			s += ": " + strconv.Quote(v)
		default:
			b, err := json.Marshal(v)
			if err != nil {
				b = fmt.Appendf(nil, "%#v", v)
			}
			s += ": " + string(b)
		}
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// ErrorList is every problem found, in a stable order.
type ErrorList []*Error

// AnnotationsField is the path of the pod's annotations.
const AnnotationsField = "metadata.annotations"

// AnnotationField is the path of one annotation.
func AnnotationField(key string) string { return AnnotationsField + "[" + key + "]" }

// The constructors below mirror field.Invalid, field.Required and so on.

func invalid(fieldPath string, value any, detail string) *Error {
	return &Error{Type: ErrorTypeInvalid, Field: fieldPath, BadValue: value, Detail: detail}
}

func required(fieldPath, detail string) *Error {
	return &Error{Type: ErrorTypeRequired, Field: fieldPath, BadValue: "", Detail: detail}
}

func forbidden(fieldPath, detail string) *Error {
	return &Error{Type: ErrorTypeForbidden, Field: fieldPath, BadValue: "", Detail: detail}
}

func duplicate(fieldPath string, value any) *Error {
	return &Error{Type: ErrorTypeDuplicate, Field: fieldPath, BadValue: value}
}

func notSupported(fieldPath string, value any, valid []string) *Error {
	quoted := make([]string, len(valid))
	for i, v := range valid {
		quoted[i] = strconv.Quote(v)
	}
	return &Error{Type: ErrorTypeNotSupported, Field: fieldPath, BadValue: value,
		Detail: "supported values: " + strings.Join(quoted, ", ")}
}

func tooMany(fieldPath string, actual, limit int) *Error {
	return &Error{Type: ErrorTypeTooMany, Field: fieldPath, BadValue: actual,
		Detail: fmt.Sprintf("must have at most %d items", limit)}
}

func internalError(fieldPath string, err error) *Error {
	return &Error{Type: ErrorTypeInternal, Field: fieldPath, Detail: err.Error()}
}

// annotation is the path of one annotation (AnnotationField).
func annotation(key string) string { return AnnotationField(key) }
