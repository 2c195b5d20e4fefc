package smfake

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/time/rate"
)

// Fault makes matching calls slow, fail, or both. Faults are checked after
// authentication, so a request with a bad signature neither triggers nor
// uses one up.
type Fault struct {
	// Operation is the operation to match, e.g. "GetSecretValue" or
	// "AssumeRoleWithWebIdentity"; "" matches any.
	Operation string
	// SecretID matches the secret a call names, "" matching any. It
	// resolves like a request's SecretId, so a name, full ARN or partial
	// ARN all match the same secret. For STS it is compared with the
	// RoleArn. In BatchGetSecretValue a fault with a SecretID fails only
	// that secret, as an entry of Errors[]; one without fails the call.
	SecretID string
	// Code is the error code to answer, e.g. "ThrottlingException",
	// "InternalServiceError", "AccessDeniedException". "" adds latency only.
	Code string
	// Status is the HTTP status; 0 means AWS's status for Code (400, or 500
	// for InternalServiceError). Any other, such as 503, is allowed.
	Status int
	// Message replaces AWS's wording for Code.
	Message string
	// Count is how many matching calls the fault affects; 0 means every
	// matching call until ClearFaults.
	Count int
	// Latency is added before answering each affected call, also when Code
	// is "".
	Latency time.Duration
}

type faultState struct {
	Fault
	used int
}

// InjectFault adds a fault. When several match a call, all of them add
// their latency and use up one of their count, and the first one injected
// that has a Code decides the error.
func (s *Server) InjectFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &faultState{Fault: f})
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// Faults returns the faults still in effect.
func (s *Server) Faults() []Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Fault
	for _, f := range s.faults {
		if f.Count == 0 || f.used < f.Count {
			out = append(out, f.Fault)
		}
	}
	return out
}

// LimitRate caps the calls of op ("" for every operation) at perSecond a
// second, with bursts of up to burst calls, the way a service quota does:
// a call over the rate is answered ThrottlingException ("Rate exceeded",
// HTTP 400), as AWS answers it, and uses up nothing. The storm benchmark
// (hack/storm) uses it to stand in for a throttled account. perSecond <= 0
// removes the cap of op.
func (s *Server) LimitRate(op string, perSecond float64, burst int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if perSecond <= 0 {
		delete(s.limits, op)
		return
	}
	if s.limits == nil {
		s.limits = map[string]*rate.Limiter{}
	}
	s.limits[op] = rate.NewLimiter(rate.Limit(perSecond), max(burst, 1))
}

// overRate reports whether a call of op goes over a cap of LimitRate.
func (s *Server) overRate(op string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, key := range []string{op, ""} {
		if l := s.limits[key]; l != nil && !l.Allow() {
			return true
		}
	}
	return false
}

// faultScope says which faults a check considers.
type faultScope int

const (
	scopeCall      faultScope = iota // an ordinary call naming at most one secret
	scopeBatchCall                   // a BatchGetSecretValue call as a whole
	scopeBatchItem                   // one secret inside a BatchGetSecretValue call
)

// applyFault waits the latency of the faults matching a call and returns
// the error of the first one with a code.
func (s *Server) applyFault(ctx context.Context, c *call, secretID string, batch bool) error {
	scope := scopeCall
	if batch {
		scope = scopeBatchCall
	}
	return s.apply(ctx, c, secretID, scope)
}

// applyItemFault does the same for one secret of a batch.
func (s *Server) applyItemFault(ctx context.Context, c *call, secretID string) error {
	return s.apply(ctx, c, secretID, scopeBatchItem)
}

func (s *Server) apply(ctx context.Context, c *call, secretID string, scope faultScope) error {
	if scope != scopeBatchItem && s.overRate(c.op) {
		return &APIError{Code: "ThrottlingException", Message: defaultFaultMessage("ThrottlingException", c, secretID)}
	}
	latency, hit := s.takeFaults(c.op, secretID, scope)
	sleep(ctx, latency)
	if hit == nil {
		return nil
	}
	msg := hit.Message
	if msg == "" {
		msg = defaultFaultMessage(hit.Code, c, secretID)
	}
	return &APIError{Code: hit.Code, Message: msg, Status: hit.Status}
}

func (s *Server) takeFaults(op, secretID string, scope faultScope) (time.Duration, *Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var latency time.Duration
	var hit *Fault
	for _, f := range s.faults {
		if !s.faultMatches(f, op, secretID, scope) {
			continue
		}
		f.used++
		latency += f.Latency
		if hit == nil && f.Code != "" {
			copied := f.Fault
			hit = &copied
		}
	}
	return latency, hit
}

// faultMatches reports whether f applies. The caller holds s.mu.
func (s *Server) faultMatches(f *faultState, op, secretID string, scope faultScope) bool {
	if f.Operation != "" && f.Operation != op {
		return false
	}
	if f.Count > 0 && f.used >= f.Count {
		return false
	}
	switch scope {
	case scopeBatchCall:
		return f.SecretID == ""
	case scopeBatchItem:
		return f.SecretID != "" && s.sameSecret(f.SecretID, secretID)
	default:
		return f.SecretID == "" || s.sameSecret(f.SecretID, secretID)
	}
}

// sameSecret reports whether two IDs name the same secret, comparing the
// strings when either names none (an unknown secret, or a role ARN).
func (s *Server) sameSecret(a, b string) bool {
	if b == "" {
		return false
	}
	if a == b {
		return true
	}
	sa, sb := s.store.resolve(a), s.store.resolve(b)
	return sa != nil && sa == sb
}

// defaultFaultMessage is AWS's wording for an injected code.
func defaultFaultMessage(code string, c *call, secretID string) string {
	switch code {
	case "ThrottlingException":
		return "Rate exceeded"
	case "AccessDeniedException":
		return fmt.Sprintf("User: %s is not authorized to perform: secretsmanager:%s on resource: %s because no identity-based policy allows the secretsmanager:%s action",
			c.principal, c.op, secretID, c.op)
	case codeInternalServiceError:
		return "An error occurred on the server side."
	case "DecryptionFailure":
		return "Secrets Manager can't decrypt the protected secret text using the provided KMS key."
	case codeResourceNotFound:
		return "Secrets Manager can't find the specified secret."
	default:
		return "Injected fault " + code + "."
	}
}
