package smfake

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// SigV4 is checked the way AWS checks it: the fake reads the claimed access
// key, scope and signed headers from the Authorization header, rebuilds the
// request from exactly those headers, signs it again with the SDK's own
// signer and the secret key it holds for that access key, and compares the
// two signatures. Recomputing with the SDK's signer, rather than a second
// implementation, means a disagreement can only come from the request.

const (
	sigV4Algorithm = "AWS4-HMAC-SHA256"
	amzDateFormat  = "20060102T150405Z"
	// maxClockSkew is how far AWS lets X-Amz-Date stray from its clock.
	maxClockSkew = 5 * time.Minute
)

// identity is who signed a request.
type identity struct {
	accessKeyID string // as claimed, even when authentication fails
	principal   string // the caller's ARN, for AccessDenied messages
}

// sigV4Header is a parsed Authorization header.
type sigV4Header struct {
	accessKeyID   string
	date          string // yyyymmdd of the credential scope
	region        string
	service       string
	signedHeaders []string
	signature     string
}

func parseAuthorization(h string) (sigV4Header, error) {
	var a sigV4Header
	rest, ok := strings.CutPrefix(h, sigV4Algorithm+" ")
	if !ok {
		return a, apiErrorf(codeIncompleteSignature, "Authorization header must use the %s algorithm.", sigV4Algorithm)
	}
	params := map[string]string{}
	for part := range strings.SplitSeq(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		params[k] = v
	}
	var missing []string
	for _, k := range []string{"Credential", "SignedHeaders", "Signature"} {
		if params[k] == "" {
			missing = append(missing, "Authorization header requires '"+k+"' parameter.")
		}
	}
	if len(missing) > 0 {
		return a, apiErrorf(codeIncompleteSignature, "%s", strings.Join(missing, " "))
	}
	scope := strings.Split(params["Credential"], "/")
	if len(scope) != 5 || scope[4] != "aws4_request" || scope[0] == "" {
		return a, apiErrorf(codeIncompleteSignature, "Credential must have the form <AccessKeyId>/<yyyymmdd>/<region>/<service>/aws4_request.")
	}
	a.accessKeyID, a.date, a.region, a.service = scope[0], scope[1], scope[2], scope[3]
	a.signedHeaders = strings.Split(params["SignedHeaders"], ";")
	a.signature = params["Signature"]
	return a, nil
}

// authenticate verifies the request's SigV4 signature for service and
// returns who signed it.
func (s *Server) authenticate(r *http.Request, body []byte, service string) (identity, error) {
	header := r.Header.Get("Authorization")
	if header == "" {
		return identity{}, apiErrorf(codeMissingAuthentication, "Missing Authentication Token")
	}
	auth, err := parseAuthorization(header)
	if err != nil {
		return identity{}, err
	}
	id := identity{accessKeyID: auth.accessKeyID}

	secretKey, sessionToken, principal, err := s.lookupKey(auth.accessKeyID, r.Header.Get("X-Amz-Security-Token"))
	if err != nil {
		return id, err
	}
	id.principal = principal

	if auth.region != s.region {
		return id, apiErrorf(codeInvalidSignature, "Credential should be scoped to a valid region, not '%s'. This endpoint serves '%s'.", auth.region, s.region)
	}
	if auth.service != service {
		return id, apiErrorf(codeInvalidSignature, "Credential should be scoped to correct service: '%s'. ", service)
	}

	amzDate := r.Header.Get("X-Amz-Date")
	if amzDate == "" {
		return id, apiErrorf(codeIncompleteSignature, "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
	}
	signed, err := time.Parse(amzDateFormat, amzDate)
	if err != nil {
		return id, apiErrorf(codeIncompleteSignature, "X-Amz-Date must have the form %s.", amzDateFormat)
	}
	if day := signed.Format("20060102"); day != auth.date {
		return id, apiErrorf(codeInvalidSignature, "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%s', from '%s'.", auth.date, day, amzDate)
	}
	now := s.now().UTC()
	switch {
	case signed.Before(now.Add(-maxClockSkew)):
		return id, apiErrorf(codeInvalidSignature, "Signature expired: %s is now earlier than %s (%s - 5 min.)",
			amzDate, now.Add(-maxClockSkew).Format(amzDateFormat), now.Format(amzDateFormat))
	case signed.After(now.Add(maxClockSkew)):
		return id, apiErrorf(codeInvalidSignature, "Signature not yet current: %s is still later than %s (%s + 5 min.)",
			amzDate, now.Add(maxClockSkew).Format(amzDateFormat), now.Format(amzDateFormat))
	}

	// The payload hash is always computed from the body received, so a
	// body changed in transit cannot hide behind a stale hash header.
	sum := sha256.Sum256(body)
	payloadHash := hex.EncodeToString(sum[:])
	if claimed := r.Header.Get("X-Amz-Content-Sha256"); claimed != "" && claimed != payloadHash {
		return id, apiErrorf(codeInvalidSignature, "The provided 'x-amz-content-sha256' header does not match what was computed.")
	}

	want, err := resign(r, auth, body, payloadHash, signed, aws.Credentials{
		AccessKeyID:     auth.accessKeyID,
		SecretAccessKey: secretKey,
		SessionToken:    sessionToken,
	})
	if err != nil {
		return id, apiErrorf(codeInternalServiceError, "An error occurred on the server side.")
	}
	if subtle.ConstantTimeCompare([]byte(want), []byte(auth.signature)) != 1 {
		return id, apiErrorf(codeInvalidSignature, "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
	}
	return id, nil
}

// lookupKey finds the secret key for an access key, checking the session
// token that temporary credentials require and static ones must not carry.
func (s *Server) lookupKey(accessKeyID, token string) (secretKey, sessionToken, principal string, err error) {
	invalid := apiErrorf(codeUnrecognizedClient, "The security token included in the request is invalid.")
	if accessKeyID == s.staticKeyID {
		if token != "" {
			return "", "", "", invalid
		}
		return s.staticKey, "", "arn:aws:iam::" + s.accountID + ":user/secretfetch-fake", nil
	}
	s.mu.Lock()
	cred, ok := s.tempKeys[accessKeyID]
	s.mu.Unlock()
	if !ok {
		cred, ok = s.fromToken(accessKeyID, token)
	}
	if !ok || subtle.ConstantTimeCompare([]byte(token), []byte(cred.sessionToken)) != 1 {
		return "", "", "", invalid
	}
	if !s.now().Before(cred.expires) {
		return "", "", "", apiErrorf(codeExpiredToken, "The security token included in the request is expired")
	}
	return cred.secretKey, cred.sessionToken, cred.principal, nil
}

// resign signs a copy of r that holds only the headers the client signed,
// and returns the signature the SDK's signer computes for it.
func resign(r *http.Request, auth sigV4Header, body []byte, payloadHash string, signed time.Time, creds aws.Credentials) (string, error) {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	req := &http.Request{
		Method: r.Method,
		URL:    &url.URL{Scheme: scheme, Host: r.Host, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery},
		Host:   r.Host,
		Header: http.Header{},
	}
	tokenSigned := false
	for _, name := range auth.signedHeaders {
		switch name {
		case "host":
			// The signer takes it from req.Host.
		case "content-length":
			// The signer signs Content-Length only when it is positive,
			// from req.ContentLength.
			req.ContentLength = int64(len(body))
		default:
			if name == "x-amz-security-token" {
				tokenSigned = true
			}
			if vals := r.Header.Values(name); len(vals) > 0 {
				req.Header[textproto.CanonicalMIMEHeaderKey(name)] = vals
			}
		}
	}
	// The signer adds X-Amz-Security-Token itself when the credentials have
	// one. A client that left the token out of the signed headers signed
	// without it, so re-sign without it too.
	if !tokenSigned {
		creds.SessionToken = ""
	}
	err := v4.NewSigner().SignHTTP(r.Context(), creds, req, payloadHash, auth.service, auth.region, signed)
	if err != nil {
		return "", err
	}
	_, sig, _ := strings.Cut(req.Header.Get("Authorization"), "Signature=")
	return sig, nil
}
