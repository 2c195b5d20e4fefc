package smfake

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The STS side answers one action, AssumeRoleWithWebIdentity, in STS's
// query protocol: a form-encoded POST / and an XML answer. That is what
// IRSA's credential provider calls with the pod's projected service account
// token. The credentials it issues are then accepted by the Secrets Manager
// side's SigV4 check, so the whole chain runs without AWS.

const (
	stsNamespace  = "https://sts.amazonaws.com/doc/2011-06-15/"
	stsAudience   = "sts.amazonaws.com"
	stsActionWeb  = "AssumeRoleWithWebIdentity"
	stsTimeFormat = "2006-01-02T15:04:05Z"
)

// AssumedRole records one AssumeRoleWithWebIdentity that succeeded, so that
// tests can assert which identity fetched what.
type AssumedRole struct {
	RoleARN     string
	SessionName string
	// Subject is the token's sub claim, e.g.
	// "system:serviceaccount:<namespace>:<name>".
	Subject string
	// AccessKeyID is the issued temporary key; requests signed with it are
	// logged with it.
	AccessKeyID string
	Expiration  time.Time
}

// AssumedRoles returns the roles assumed so far, oldest first.
func (s *Server) AssumedRoles() []AssumedRole {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.roles)
}

// tempCredential is a key pair issued by the fake STS.
type tempCredential struct {
	secretKey    string
	sessionToken string
	expires      time.Time
	principal    string // the assumed-role ARN
}

type stsCredentials struct {
	AccessKeyId     string `xml:"AccessKeyId"`
	SecretAccessKey string `xml:"SecretAccessKey"`
	SessionToken    string `xml:"SessionToken"`
	Expiration      string `xml:"Expiration"`
}

type stsAssumedRoleUser struct {
	AssumedRoleId string `xml:"AssumedRoleId"`
	Arn           string `xml:"Arn"`
}

type assumeRoleWithWebIdentityResponse struct {
	XMLName xml.Name `xml:"https://sts.amazonaws.com/doc/2011-06-15/ AssumeRoleWithWebIdentityResponse"`
	Result  struct {
		Credentials                 stsCredentials     `xml:"Credentials"`
		SubjectFromWebIdentityToken string             `xml:"SubjectFromWebIdentityToken"`
		AssumedRoleUser             stsAssumedRoleUser `xml:"AssumedRoleUser"`
		Audience                    string             `xml:"Audience"`
		Provider                    string             `xml:"Provider"`
	} `xml:"AssumeRoleWithWebIdentityResult"`
	Metadata struct {
		RequestId string `xml:"RequestId"`
	} `xml:"ResponseMetadata"`
}

type stsErrorResponse struct {
	XMLName xml.Name `xml:"https://sts.amazonaws.com/doc/2011-06-15/ ErrorResponse"`
	Error   struct {
		Type    string `xml:"Type"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	} `xml:"Error"`
	RequestId string `xml:"RequestId"`
}

func (s *Server) serveSTS(w http.ResponseWriter, r *http.Request, rec *Request) {
	out, err := s.handleSTS(w, r, rec)
	requestID, _ := newUUID()
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("X-Amzn-Requestid", requestID)
	if err != nil {
		var apiErr *APIError
		if !errors.As(err, &apiErr) {
			apiErr = apiErrorf("InternalFailure", "An internal error occurred.")
		}
		rec.Code, rec.Status = apiErr.Code, apiErr.HTTPStatus()
		var body stsErrorResponse
		body.Error.Type = "Sender"
		if rec.Status >= 500 {
			body.Error.Type = "Receiver"
		}
		body.Error.Code, body.Error.Message, body.RequestId = apiErr.Code, apiErr.Message, requestID
		writeXML(w, rec.Status, body)
		return
	}
	out.Metadata.RequestId = requestID
	rec.Status = http.StatusOK
	writeXML(w, http.StatusOK, out)
}

func writeXML(w http.ResponseWriter, status int, v any) {
	b, err := xml.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`<ErrorResponse xmlns="` + stsNamespace + `"><Error><Type>Receiver</Type><Code>InternalFailure</Code><Message>marshalling the response failed</Message></Error></ErrorResponse>`)
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

var (
	roleARNPattern     = regexp.MustCompile(`^arn:aws[a-z-]*:iam::(\d{12}):role/(?:[\w+=,.@-]+/)*([\w+=,.@-]{1,64})$`)
	sessionNamePattern = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
)

func validationError(member, value, constraint string) *APIError {
	return apiErrorf("ValidationError", "1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: %s", value, member, constraint)
}

func (s *Server) handleSTS(w http.ResponseWriter, r *http.Request, rec *Request) (*assumeRoleWithWebIdentityResponse, error) {
	body, err := readBody(w, r)
	if err != nil {
		return nil, apiErrorf("MalformedInput", "The request body could not be read.")
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, apiErrorf("MalformedInput", "The request body is not a valid form.")
	}
	action := form.Get("Action")
	rec.Operation = action
	rec.SecretID = form.Get("RoleArn")
	if r.Method != http.MethodPost || r.URL.Path != "/" || action != stsActionWeb {
		return nil, apiErrorf("InvalidAction", "Could not find operation %s for version 2011-06-15", action)
	}
	if v := form.Get("Version"); v != "" && v != "2011-06-15" {
		return nil, apiErrorf("InvalidAction", "Could not find operation %s for version %s", action, v)
	}

	// AssumeRoleWithWebIdentity is unsigned: the token is the credential.
	roleARN := form.Get("RoleArn")
	m := roleARNPattern.FindStringSubmatch(roleARN)
	if m == nil {
		return nil, validationError("roleArn", roleARN, "Member must be an IAM role ARN")
	}
	roleAccount, roleName := m[1], m[2]
	session := form.Get("RoleSessionName")
	if !sessionNamePattern.MatchString(session) {
		return nil, validationError("roleSessionName", session, `Member must satisfy regular expression pattern: [\w+=,.@-]*`)
	}
	duration := time.Hour
	if d := form.Get("DurationSeconds"); d != "" {
		n, err := strconv.Atoi(d)
		if err != nil || n < 900 || n > 43200 {
			return nil, validationError("durationSeconds", d, "Member must have value between 900 and 43200")
		}
		duration = time.Duration(n) * time.Second
	}
	claims, err := parseWebIdentityToken(form.Get("WebIdentityToken"), s.now())
	if err != nil {
		return nil, err
	}

	if err := s.apply(r.Context(), &call{op: action}, roleARN, scopeCall); err != nil {
		return nil, err
	}

	now := s.now()
	principal := "arn:aws:sts::" + roleAccount + ":assumed-role/" + roleName + "/" + session
	cred, accessKeyID, err := s.newTempCredential(principal, now.Add(duration))
	if err != nil {
		return nil, apiErrorf("InternalFailure", "An internal error occurred.")
	}
	roleID := roleID(roleARN)

	s.mu.Lock()
	s.tempKeys[accessKeyID] = cred
	s.roles = append(s.roles, AssumedRole{
		RoleARN:     roleARN,
		SessionName: session,
		Subject:     claims.Sub,
		AccessKeyID: accessKeyID,
		Expiration:  cred.expires,
	})
	s.mu.Unlock()

	out := &assumeRoleWithWebIdentityResponse{}
	out.Result.Credentials = stsCredentials{
		AccessKeyId:     accessKeyID,
		SecretAccessKey: cred.secretKey,
		SessionToken:    cred.sessionToken,
		Expiration:      cred.expires.UTC().Format(stsTimeFormat),
	}
	out.Result.SubjectFromWebIdentityToken = claims.Sub
	out.Result.AssumedRoleUser = stsAssumedRoleUser{AssumedRoleId: roleID + ":" + session, Arn: cred.principal}
	out.Result.Audience = stsAudience
	out.Result.Provider = claims.Iss
	return out, nil
}

// audience is a JWT aud claim, which may be one string or a list.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("decoding the aud claim: %w", err)
	}
	*a = many
	return nil
}

type webIdentityClaims struct {
	Iss string   `json:"iss"`
	Sub string   `json:"sub"`
	Aud audience `json:"aud"`
	Exp *float64 `json:"exp"`
}

// parseWebIdentityToken reads the claims of a JWT without verifying its
// signature. Verifying it would need the OIDC issuer's keys (the cluster's
// service account signing key, published by the API server), which the
// fake neither has nor should need: it stands in for STS to exercise the
// client's credential chain, not IAM's trust policy. It does check what a
// misconfigured client would get wrong: that the token is a JWT, that its
// audience is STS, and that it has not expired.
func parseWebIdentityToken(token string, now time.Time) (webIdentityClaims, error) {
	var claims webIdentityClaims
	notJWT := apiErrorf("InvalidIdentityToken", "The ID token provided is not a valid JWT. (You may see this error if you sent an Access Token)")
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return claims, notJWT
	}
	for i, part := range parts[:2] {
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(part, "="))
		if err != nil {
			return claims, notJWT
		}
		var dst any = &map[string]any{}
		if i == 1 {
			dst = &claims
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return claims, notJWT
		}
	}
	if !slices.Contains(claims.Aud, stsAudience) {
		return claims, apiErrorf("InvalidIdentityToken", "Incorrect token audience")
	}
	if claims.Sub == "" {
		return claims, apiErrorf("InvalidIdentityToken", "The web identity token has no sub claim")
	}
	if claims.Exp != nil {
		exp := time.Unix(int64(*claims.Exp), 0)
		if !now.Before(exp) {
			return claims, apiErrorf("ExpiredTokenException", "Token expired: current date/time %d must be before the expiration date/time %d", now.Unix(), exp.Unix())
		}
	}
	return claims, nil
}

// keyAlphabet is the alphabet of AWS access key IDs after their prefix.
var keyAlphabet = base32.StdEncoding.WithPadding(base32.NoPadding)

// newTempCredential issues a key pair for principal until expires. Any
// fake with the same static secret key accepts it (see fromToken), as AWS's
// temporary credentials work in every region: the failover region's fake
// must take the credentials that the primary's STS issued.
func (s *Server) newTempCredential(principal string, expires time.Time) (*tempCredential, string, error) {
	buf := make([]byte, 10)
	if _, err := rand.Read(buf); err != nil {
		return nil, "", fmt.Errorf("reading random bytes: %w", err)
	}
	accessKeyID := "ASIA" + keyAlphabet.EncodeToString(buf)[:16]
	claims, err := json.Marshal(tokenClaims{AccessKeyID: accessKeyID, Expires: expires.Unix(), Principal: principal})
	if err != nil {
		return nil, "", err
	}
	payload := base64.RawURLEncoding.EncodeToString(claims)
	return &tempCredential{
		secretKey:    s.tempSecretKey(accessKeyID),
		sessionToken: payload + "." + base64.RawURLEncoding.EncodeToString(s.mac("token:"+payload)),
		expires:      expires,
		principal:    principal,
	}, accessKeyID, nil
}

// tokenClaims are what a session token carries, under the fake's MAC.
type tokenClaims struct {
	AccessKeyID string `json:"a"`
	Expires     int64  `json:"e"`
	Principal   string `json:"p"`
}

// mac is an HMAC-SHA256 of msg under the fake's static secret key.
func (s *Server) mac(msg string) []byte {
	h := hmac.New(sha256.New, []byte(s.staticKey))
	h.Write([]byte(msg))
	return h.Sum(nil)
}

// tempSecretKey is the secret key of a temporary access key: derived, so
// that another fake can recompute it.
func (s *Server) tempSecretKey(accessKeyID string) string {
	return base64.StdEncoding.EncodeToString(s.mac("secret:" + accessKeyID))[:40]
}

// fromToken reads a temporary credential that another fake with the same
// static key issued, from its session token; false if the token is not
// one, or not for accessKeyID.
func (s *Server) fromToken(accessKeyID, token string) (*tempCredential, bool) {
	payload, sig, ok := strings.Cut(token, ".")
	if !ok {
		return nil, false
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac("token:"+payload)) {
		return nil, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	var c tokenClaims
	if err != nil || json.Unmarshal(raw, &c) != nil || c.AccessKeyID != accessKeyID {
		return nil, false
	}
	return &tempCredential{secretKey: s.tempSecretKey(accessKeyID), sessionToken: token,
		expires: time.Unix(c.Expires, 0), principal: c.Principal}, true
}

// roleID is a stable unique ID for a role ARN, shaped like AWS's "AROA..."
// role IDs.
func roleID(roleARN string) string {
	sum := sha256.Sum256([]byte(roleARN))
	return "AROA" + keyAlphabet.EncodeToString(sum[:])[:17]
}

// WebIdentityToken builds a web identity token with the given claims, for
// tests that run the SDK's IRSA credential chain against this fake. It is not
// signed with any real key: the fake's STS reads only the claims (see
// parseWebIdentityToken), and real STS would refuse it.
func WebIdentityToken(claims map[string]any) (string, error) {
	header, err := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": "secretfetch-fake"})
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("encoding the token's claims: %w", err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc(header) + "." + enc(payload) + "." + enc([]byte("not-a-signature")), nil
}
