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
// server fault (any 5xx, InternalServiceError), a connection error or a
// timeout. Everything else, and in particular AccessDeniedException,
// ResourceNotFoundException, DecryptionFailure, InvalidRequestException and
// InvalidParameterException, is permanent.
//
// It decides on types and error codes only, never on message text. Note that
// AccessDeniedException and ThrottlingException are not modelled error types
// in the Secrets Manager SDK, so the code is the only thing to go by.
func Retryable(err error) bool {
	if fromNodeCredentials(err) {
		return false
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		code := apiErr.ErrorCode()
		switch {
		case isPermanentCode(code):
			return false
		case isThrottleCode(code), code == "InternalServiceError", code == "InternalFailure",
			code == "ServiceUnavailable", code == "RequestTimeout", code == "RequestTimeoutException":
			return true
		}
		// An unknown code is decided by its HTTP status below.
	}
	// The SDK wraps transport failures in a ResponseError too, with status
	// 0; only a real status says the service answered.
	var st httpStatus
	if errors.As(err, &st) && st.HTTPStatusCode() > 0 {
		s := st.HTTPStatusCode()
		return s >= 500 || s == 429
	}
	if apiErr != nil {
		return false
	}
	// No answer from the service: a transport problem. A context error here
	// is the per-attempt timeout (Fetch checks the overall one first), and
	// context.DeadlineExceeded is itself a net.Error with Timeout() true.
	if errors.Is(err, context.Canceled) {
		return false
	}
	var netErr net.Error
	return errors.As(err, &netErr) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE)
}

// Code returns the AWS error code of err, or one of this package's Code
// constants when the service did not answer with one.
func Code(err error) string {
	if fromNodeCredentials(err) {
		return CodeNoCredentials
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode() != "" {
		return apiErr.ErrorCode()
	}
	var netErr net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return CodeCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return CodeTimeout
	case errors.As(err, &netErr) && netErr.Timeout():
		return CodeTimeout
	case errors.As(err, &netErr),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.EPIPE):
		return CodeConnection
	}
	return CodeUnknown
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
