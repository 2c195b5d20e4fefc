package fetch

import (
	"context"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/secretfetch/secretfetch/internal/clip"
)

// MaxValueBytes is Secrets Manager's limit on a secret value: a
// SecretString or a SecretBinary holds at most 65,536 bytes. A larger value
// cannot come from AWS, so it comes from a broken or hostile endpoint, and
// it is refused with CodeValueTooLarge rather than written to a file.
const MaxValueBytes = 64 << 10

// MaxResponseBytes bounds every response body the SDK reads for init-fetch:
// GetSecretValue, STS AssumeRoleWithWebIdentity and the container
// credentials endpoint of Pod Identity, answers and error answers alike.
//
// The largest answer AWS can legally send is a GetSecretValue of a 64 KiB
// SecretString made of characters that JSON escapes as \u00XX: six bytes
// of body per byte of value, 384 KiB. (SecretBinary is base64, 4/3 of 64
// KiB; everything else in the answer, the ARN, name, version ID, up to 20
// staging labels and a date, is under 10 KiB; STS and credential answers
// are a few KiB.) 512 KiB holds all of that with room to spare, and is still
// small enough that a 100 MB answer or error body costs init-fetch well
// under a megabyte of memory before it is refused.
const MaxResponseBytes = 512 << 10

// ErrResponseTooLarge is the read error of a response body past
// MaxResponseBytes. The SDK wraps it (as a DeserializationError inside the
// operation error), so errors.Is finds it; Code reports it as
// CodeResponseTooLarge and it is never retried.
var ErrResponseTooLarge = fmt.Errorf("the response body is larger than %d bytes, more than any AWS answer", MaxResponseBytes)

// capBodyID names the middleware in the SDK's stack.
const capBodyID = "secretfetch.CapResponseBody"

// CapResponseBodies is an SDK API option (for aws.Config.APIOptions or a
// client's Options.APIOptions) that makes every response body of the
// client fail its read past MaxResponseBytes. A Deserialize middleware
// rather than a wrapped HTTP client: the SDK's own client must stay an
// *awshttp.BuildableClient, or config.LoadDefaultConfig refuses
// AWS_CA_BUNDLE, and API options reach the STS and container-credential
// clients that the default credential chain builds from the same config.
// Adding it twice is harmless.
func CapResponseBodies(stack *middleware.Stack) error {
	if _, ok := stack.Deserialize.Get(capBodyID); ok {
		return nil
	}
	// After (inside) the operation's deserializer, which reads the body,
	// so the body it reads is the capped one. Stacks without an
	// OperationDeserializer get it innermost, which is the same place.
	err := stack.Deserialize.Insert(capBody{}, "OperationDeserializer", middleware.After)
	if err != nil {
		err = stack.Deserialize.Add(capBody{}, middleware.After)
	}
	if err != nil {
		return fmt.Errorf("adding the response body cap: %w", err)
	}
	return nil
}

// LoadConfig is config.LoadDefaultConfig with CapResponseBodies added, so
// the clients of the default credential chain (STS for IRSA, the Pod
// Identity agent) are capped as well as Secrets Manager.
func LoadConfig(ctx context.Context, optFns ...func(*config.LoadOptions) error) (aws.Config, error) {
	optFns = append(optFns, config.WithAPIOptions([]func(*middleware.Stack) error{CapResponseBodies}))
	return config.LoadDefaultConfig(ctx, optFns...)
}

type capBody struct{}

func (capBody) ID() string { return capBodyID }

func (capBody) HandleDeserialize(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (
	middleware.DeserializeOutput, middleware.Metadata, error,
) {
	out, md, err := next.HandleDeserialize(ctx, in)
	if resp, ok := out.RawResponse.(*smithyhttp.Response); ok && resp.Body != nil {
		resp.Body = &cappedBody{rc: resp.Body, left: MaxResponseBytes, declared: resp.ContentLength}
	}
	return out, md, err
}

// cappedBody reads at most left bytes and then fails with
// ErrResponseTooLarge if there is more. Unlike io.LimitReader it does not
// end quietly at the cap, which would hand a truncated body to the decoder
// as if it were whole; unlike http.MaxBytesReader its error says
// "response", and it needs no ResponseWriter.
type cappedBody struct {
	rc       io.ReadCloser
	left     int64
	declared int64 // Content-Length, or -1
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.declared > MaxResponseBytes {
		// Refuse a body that says it is too large before reading it.
		return 0, ErrResponseTooLarge
	}
	if b.left <= 0 {
		// At the cap: one more byte means too large, EOF means exactly
		// the cap.
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			return 0, ErrResponseTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *cappedBody) Close() error { return b.rc.Close() }

// MaxErrorText bounds the text of an error that init-fetch logs or
// embeds in another error. An error of the SDK quotes the service's
// message, which a hostile endpoint can make as long as MaxResponseBytes,
// and a retried failure is logged once per attempt.
const MaxErrorText = 1024

// ErrorText is err.Error() cut to at most MaxErrorText bytes, on a UTF-8
// boundary, with a marker when it was cut.
func ErrorText(err error) string {
	if err == nil {
		return ""
	}
	return Truncate(err.Error(), MaxErrorText)
}

// Truncate cuts s to at most n bytes without splitting a UTF-8 sequence,
// ending it with " [truncated]" when it was cut and n leaves room for that.
func Truncate(s string, n int) string { return clip.Marked(s, n, " [truncated]") }
