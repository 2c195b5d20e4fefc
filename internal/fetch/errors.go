package fetch

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/smithy-go"
)

// httpStatus is implemented by smithy-go's *http.ResponseError and, through
// embedding, by the SDK's *awshttp.ResponseError; matching the method rather
// than either type finds both.
type httpStatus interface{ HTTPStatusCode() int }

// Retryable reports whether another attempt could succeed: throttling, a
// server fault (any 5xx, InternalServiceError), a connection that failed at
// any point (before the status, in the headers or in the body) or a
// timeout. Everything else, and in particular AccessDeniedException,
// ResourceNotFoundException, DecryptionFailure, InvalidRequestException and
// InvalidParameterException, is permanent.
//
// It decides on types and error codes only, never on message text. Note that
// AccessDeniedException and ThrottlingException are not modelled error types
// in the Secrets Manager SDK, so the code is the only thing to go by.
//
// Retryable and Code are two views of one classification (classify), so
// an error that Code calls a connection error or a timeout is always
// retried, and one it calls NoCredentials, Canceled or ResponseTooLarge
// never is.
func Retryable(err error) bool {
	_, retry := classify(err)
	return retry
}

// Code returns the AWS error code of err, or one of this package's Code
// constants when the service did not answer with one. An AWS code is
// returned only when it has the shape of one (see ValidCode); any other
// text in its place is reported as CodeMalformed, because the code is
// written to the termination message and from there to the pod's status.
func Code(err error) string {
	code, _ := classify(err)
	return code
}

// classify returns the code of err and whether another attempt could
// succeed. The order matters:
//
//   - What no retry can fix and no answer can explain better comes first:
//     the pod has no credentials, the endpoint sent more than any AWS
//     answer, or a signal came.
//   - A transport failure comes before the service's answer. The SDK wraps
//     a connection dropped while the body was read in a ResponseError that
//     still carries the status (200, or 400 for an error answer), with a
//     DeserializationError around the network error and no API error; the
//     status says nothing about whether the next attempt gets through.
//     (Go's transport closes a connection under the reader in a known race,
//     "use of closed network connection" with status 200; see
//     aws/aws-sdk-go-v2#1825 and #2737. hack/storm reproduces it.)
//   - Then the service's code, and last its HTTP status.
func classify(err error) (code string, retry bool) {
	if fromNodeCredentials(err) {
		return CodeNoCredentials, false
	}
	if errors.Is(err, ErrResponseTooLarge) {
		return CodeResponseTooLarge, false
	}
	if errors.Is(err, context.Canceled) {
		return CodeCanceled, false
	}
	// A context error here is the per-attempt timeout (Fetch checks the
	// overall one first), and context.DeadlineExceeded is itself a
	// net.Error with Timeout() true.
	var netErr net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout() {
		return CodeTimeout, true
	}
	if netErr != nil ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNABORTED) {
		return CodeConnection, true
	}

	// The service (or something that speaks for it) answered.
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode() != "" {
		code = apiErr.ErrorCode()
		switch {
		case !ValidCode(code):
			// Not a code AWS would send; only the status can tell.
			code = CodeMalformed
		case isPermanentCode(code):
			return code, false
		case isThrottleCode(code), code == "InternalServiceError", code == "InternalFailure",
			code == "ServiceUnavailable", code == "RequestTimeout", code == "RequestTimeoutException":
			return code, true
		}
		// Any other code is decided by its HTTP status below.
	} else {
		code = CodeUnknown
	}
	// The SDK wraps transport failures in a ResponseError too, with status
	// 0; only a real status says the service answered.
	var st httpStatus
	if errors.As(err, &st) && st.HTTPStatusCode() > 0 {
		s := st.HTTPStatusCode()
		return code, s >= 500 || s == 429
	}
	return code, false
}

// ValidCode reports whether code has the shape of an AWS error code: a
// letter, then up to 63 letters, digits, '_' or '.' (the dots of the query
// protocol's codes, such as AWS.SimpleQueueService.NonExistentQueue). Every
// code AWS documents fits, and so do this package's own. Anything else (a
// space, a newline, a colon, a quote, or sheer length) is text that a broken
// or hostile endpoint put in __type, and must not reach a termination
// message.
func ValidCode(code string) bool {
	if len(code) == 0 || len(code) > 64 {
		return false
	}
	for i := 0; i < len(code); i++ {
		c := code[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z':
		case i > 0 && ('0' <= c && c <= '9' || c == '_' || c == '.'):
		default:
			return false
		}
	}
	return true
}

// fromNodeCredentials reports whether err came from the SDK asking the EC2
// instance metadata service for credentials. The default chain gets there
// only when the pod carries neither IRSA nor EKS Pod Identity settings, and
// the webhook switches that fallback off (AWS_EC2_METADATA_DISABLED), because
// the node's role is not the pod's identity. Retrying cannot make a pod grow
// credentials, so this is permanent, with a code that says what is missing.
//
// The SDK reports it as an operation error of the ec2imds service, nested
// inside the Secrets Manager operation error, so the chain is walked rather
// than asked once with errors.As, which would stop at the outer one.
func fromNodeCredentials(err error) bool {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if op, ok := e.(*smithy.OperationError); ok && op.ServiceID == imds.ServiceID {
			return true
		}
	}
	return false
}

// isPermanentCode lists the Secrets Manager errors that no retry can fix.
func isPermanentCode(code string) bool {
	switch code {
	case "AccessDeniedException", "ResourceNotFoundException", "DecryptionFailure",
		"InvalidRequestException", "InvalidParameterException",
		// Signature and credential problems fail the same way every time.
		"UnrecognizedClientException", "InvalidSignatureException", "IncompleteSignature",
		"MissingAuthenticationToken", "ExpiredTokenException", "InvalidClientTokenId",
		"SignatureDoesNotMatch", "AccessDenied":
		return true
	}
	return false
}

// isThrottleCode lists the codes AWS services use for throttling; it is the
// SDK's own list (aws/retry.DefaultThrottleErrorCodes), kept here as a switch
// so that no package-level map can be changed under us.
func isThrottleCode(code string) bool {
	switch code {
	case "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
		"TooManyRequestsException", "ProvisionedThroughputExceededException",
		"TransactionInProgressException", "RequestLimitExceeded", "BandwidthLimitExceeded",
		"LimitExceededException", "RequestThrottled", "SlowDown", "PriorRequestNotComplete",
		"EC2ThrottledException":
		return true
	}
	return false
}
