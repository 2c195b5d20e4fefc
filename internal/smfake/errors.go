package smfake

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Error codes the fake answers. The Secrets Manager ones are modelled in the
// SDK (types.ResourceNotFoundException and so on); the others (throttling,
// access denied, and the authentication family) reach clients as smithy
// GenericAPIErrors with the code.
const (
	codeResourceNotFound     = "ResourceNotFoundException"
	codeInvalidParameter     = "InvalidParameterException"
	codeInvalidRequest       = "InvalidRequestException"
	codeResourceExists       = "ResourceExistsException"
	codeInvalidNextToken     = "InvalidNextTokenException"
	codeInternalServiceError = "InternalServiceError"
	codeSerialization        = "SerializationException"
	codeUnknownOperation     = "UnknownOperationException"

	codeUnrecognizedClient    = "UnrecognizedClientException"
	codeInvalidSignature      = "InvalidSignatureException"
	codeIncompleteSignature   = "IncompleteSignatureException"
	codeMissingAuthentication = "MissingAuthenticationTokenException"
	codeExpiredToken          = "ExpiredTokenException"
)

// APIError is an error the fake answers with. The Go seeding methods return
// it wrapped, so tests can errors.As it and check Code.
type APIError struct {
	Code    string
	Message string
	// Status is the HTTP status; 0 means AWS's status for Code.
	Status int
}

func (e *APIError) Error() string { return e.Code + ": " + e.Message }

// HTTPStatus is the status the fake answers e with.
func (e *APIError) HTTPStatus() int {
	if e.Status != 0 {
		return e.Status
	}
	return statusForCode(e.Code)
}

// statusForCode is AWS's HTTP status for an error code: Secrets Manager
// answers every client error, throttling and access denial included, with
// 400, and its internal error with 500.
func statusForCode(code string) int {
	switch code {
	case codeInternalServiceError, "InternalFailure":
		return http.StatusInternalServerError
	case "ServiceUnavailable", "ServiceUnavailableException":
		return http.StatusServiceUnavailable
	default:
		return http.StatusBadRequest
	}
}

// apiErrorf builds an *APIError. Messages carry IDs and labels, never values.
func apiErrorf(code, format string, args ...any) *APIError {
	return &APIError{Code: code, Message: fmt.Sprintf(format, args...)}
}

func errSecretNotFound() *APIError {
	return apiErrorf(codeResourceNotFound, "Secrets Manager can't find the specified secret.")
}

// jsonProblem describes a JSON decoding error by position, member and type,
// because encoding/json's own messages quote pieces of the document, and
// the document may hold a secret value. Unknown-member errors name only the
// member, so they pass through.
func jsonProblem(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		return fmt.Errorf("member %s: expected %s, got %s", te.Field, te.Type, te.Value)
	case errors.As(err, &se):
		return fmt.Errorf("syntax error at offset %d", se.Offset)
	}
	return err
}
