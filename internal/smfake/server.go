// Package smfake is a faithful in-process fake of AWS Secrets Manager's JSON
// protocol, plus the one STS call (AssumeRoleWithWebIdentity) that the IRSA
// credential chain needs.
//
// It exists because these machines can run neither LocalStack nor moto, and
// because a fake that answers loosely would let the init container pass tests
// that real AWS fails. So it checks what AWS checks: it recomputes every SigV4
// signature with the SDK's own signer, moves version stages the way AWS moves
// them, resolves names, full ARNs and partial ARNs, and answers errors with
// AWS's codes, statuses and body shape. The conformance test replays the
// SDK's own wire snapshots against it so it cannot drift from the SDK we pin.
//
// A Server is an http.Handler. Tests use it through httptest; the
// cmd/fake-secretsmanager binary serves it as a host process or a pod.
// Faults (error codes for the next N calls, latency, 5xx) and a request log
// let tests assert on retries and attempt counts.
//
// The fake never logs, and never puts into an error, a secret value: the
// end-to-end tests grep every log for canary values.
package smfake

import (
	"context"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

const (
	// DefaultAccessKeyID and DefaultSecretAccessKey are the static
	// credentials a Server accepts unless WithCredentials says otherwise.
	DefaultAccessKeyID     = "AKIDSECRETFETCHFAKE"
	DefaultSecretAccessKey = "secretfetch-fake-secret-access-key"

	// DefaultRegion and DefaultAccountID shape the ARNs a Server issues.
	DefaultRegion    = "us-east-1"
	DefaultAccountID = "111122223333"

	// maxBodyBytes bounds a request body. Real requests are far smaller
	// (a secret value is at most 64 KiB); the bound only stops a runaway
	// client from exhausting memory.
	maxBodyBytes = 1 << 20
)

// Server is the fake. Its zero value is not usable; call New.
type Server struct {
	region      string
	accountID   string
	staticKeyID string
	staticKey   string
	now         func() time.Time
	logger      *slog.Logger
	// replicaSuffixes: see WithReplicaSuffixes.
	replicaSuffixes bool

	mu       sync.Mutex
	store    store
	faults   []*faultState
	limits   map[string]*rate.Limiter // by operation, "" for all; see LimitRate
	requests []Request
	tempKeys map[string]*tempCredential
	roles    []AssumedRole
}

// Option configures a Server.
type Option func(*Server)

// WithRegion sets the region of the fake: it appears in ARNs, and a SigV4
// credential scope must name it. The default is DefaultRegion.
func WithRegion(region string) Option { return func(s *Server) { s.region = region } }

// WithAccountID sets the account ID in ARNs. The default is DefaultAccountID.
func WithAccountID(id string) Option { return func(s *Server) { s.accountID = id } }

// WithReplicaSuffixes gives every secret the ARN suffix that every fake
// with this option gives a secret of that account and name, instead of a
// random one, so that two fakes in two regions hold a secret and its
// replica, whose ARNs differ only in the region, as AWS's do.
func WithReplicaSuffixes() Option { return func(s *Server) { s.replicaSuffixes = true } }

// WithCredentials sets the static access key pair the fake accepts.
// Temporary credentials issued by the fake STS are accepted as well.
func WithCredentials(accessKeyID, secretAccessKey string) Option {
	return func(s *Server) { s.staticKeyID, s.staticKey = accessKeyID, secretAccessKey }
}

// WithClock replaces time.Now, for clock-skew tests and stable dates.
// Injected latency still waits in real time.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithLogger makes the fake log one line per request (operation, secret ID,
// status, error code; never a value). By default it logs nothing.
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.logger = l } }

// New returns a Server with no secrets.
func New(opts ...Option) *Server {
	s := &Server{
		region:      DefaultRegion,
		accountID:   DefaultAccountID,
		staticKeyID: DefaultAccessKeyID,
		staticKey:   DefaultSecretAccessKey,
		now:         time.Now,
		logger:      slog.New(slog.DiscardHandler),
		tempKeys:    map[string]*tempCredential{},
	}
	for _, o := range opts {
		o(s)
	}
	s.store = newStore(s.region, s.accountID)
	s.store.replicaSuffixes = s.replicaSuffixes
	return s
}

// Region returns the region the fake serves.
func (s *Server) Region() string { return s.region }

// AccountID returns the account ID in the fake's ARNs.
func (s *Server) AccountID() string { return s.accountID }

// maxUserAgent bounds the user agent kept in the request log.
const maxUserAgent = 1024

// Request is one entry of the request log.
type Request struct {
	// Operation is the Secrets Manager operation (from X-Amz-Target) or the
	// STS action ("AssumeRoleWithWebIdentity").
	Operation string
	// SecretID is the secret ID as the client sent it (CreateSecret: the
	// name; STS: the RoleArn). Empty for operations without one.
	SecretID string
	// SecretIDs holds BatchGetSecretValue's SecretIdList as sent.
	SecretIDs []string
	// AccessKeyID is the key the request was signed with, as claimed in its
	// Authorization header (so failed authentications are visible too).
	AccessKeyID string
	// UserAgent is the request's User-Agent header, cut at
	// maxUserAgent bytes. CloudTrail records it as userAgent; init-fetch
	// puts the pod's namespace and name in it (app/<namespace>.<name>).
	UserAgent string
	// Code is the error code answered, or "" on success.
	Code string
	// Status is the HTTP status answered.
	Status int
	// Time is when the request arrived, by the Server's clock.
	Time time.Time
}

// Requests returns a copy of the request log in arrival order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		r.SecretIDs = slices.Clone(r.SecretIDs)
		out[i] = r
	}
	return out
}

// ResetRequests empties the request log.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}

// Count returns how many logged requests match operation and secretID,
// where "" matches anything. secretID is compared with the ID as sent (for
// BatchGetSecretValue, with each ID of its list), not resolved: a test
// knows which form its client sends.
func (s *Server) Count(operation, secretID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.requests {
		if r.matches(operation, secretID) {
			n++
		}
	}
	return n
}

func (r Request) matches(operation, secretID string) bool {
	return (operation == "" || r.Operation == operation) &&
		(secretID == "" || r.SecretID == secretID || slices.Contains(r.SecretIDs, secretID))
}

// ServeHTTP answers Secrets Manager JSON requests and STS form requests on
// POST /, the way the two services share nothing but the SDK's endpoint
// override.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := Request{Time: s.now(), UserAgent: r.Header.Get("User-Agent")}
	if len(rec.UserAgent) > maxUserAgent {
		rec.UserAgent = rec.UserAgent[:maxUserAgent]
	}
	if isSTSRequest(r) {
		s.serveSTS(w, r, &rec)
	} else {
		s.serveJSON(w, r, &rec)
	}
	s.mu.Lock()
	s.requests = append(s.requests, rec)
	s.mu.Unlock()

	attrs := []slog.Attr{
		slog.String("operation", rec.Operation),
		slog.Int("status", rec.Status),
		slog.Duration("duration", time.Since(start)),
	}
	if rec.SecretID != "" {
		attrs = append(attrs, slog.String("secret_id", rec.SecretID))
	}
	if len(rec.SecretIDs) > 0 {
		attrs = append(attrs, slog.Any("secret_ids", rec.SecretIDs))
	}
	if rec.AccessKeyID != "" {
		attrs = append(attrs, slog.String("access_key_id", rec.AccessKeyID))
	}
	if rec.Code != "" {
		attrs = append(attrs, slog.String("code", rec.Code))
	}
	s.logger.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
}

// isSTSRequest tells an STS query-protocol call from a Secrets Manager JSON
// call: STS sends a form, Secrets Manager sends JSON with an X-Amz-Target.
func isSTSRequest(r *http.Request) bool {
	if r.Header.Get("X-Amz-Target") != "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "application/x-www-form-urlencoded"
}

// readBody reads at most maxBodyBytes of the request body.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	return io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
}

// sleep waits d, or less if the client goes away.
func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
