package smfake

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"
)

// The admin API lets a test that cannot call Go (the e2e suite, a shell
// script) seed secrets, inject faults and read the request log of a fake
// running as a process or a pod. It is plain JSON under /_fake/, off unless
// asked for, and it never returns a secret value.

// SeedSecret is one secret to create, or to add a version to: an element
// of a --seed file and the body of POST /_fake/secrets.
type SeedSecret struct {
	Name string `json:"name"`
	// String is the SecretString; Binary (base64 in JSON) the
	// SecretBinary. Exactly one is set.
	String *string `json:"string,omitempty"`
	Binary []byte  `json:"binary,omitempty"`
	// Stages are the new version's labels; none means AWSCURRENT.
	Stages []string `json:"stages,omitempty"`
}

func (e SeedSecret) validate() error {
	if e.Name == "" {
		return errors.New("a secret needs a name")
	}
	if (e.String != nil) == (e.Binary != nil) {
		return fmt.Errorf("secret %q needs exactly one of string and binary", e.Name)
	}
	return nil
}

func (e SeedSecret) value() Value {
	if e.Binary != nil {
		return Value{Binary: e.Binary}
	}
	return Value{String: *e.String}
}

// ParseSeed reads a JSON array of SeedSecret, rejecting unknown members so
// that a typo does not silently seed nothing.
func ParseSeed(data []byte) ([]SeedSecret, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var entries []SeedSecret
	if err := dec.Decode(&entries); err != nil {
		return nil, fmt.Errorf("decoding the seed as a JSON array of {name, string|binary, stages}: %w", jsonProblem(err))
	}
	for i, e := range entries {
		if err := e.validate(); err != nil {
			return nil, fmt.Errorf("seed entry %d: %w", i, err)
		}
	}
	return entries, nil
}

// Upsert creates the secret e names, or adds a version to it, and returns
// its ARN and the version ID.
func (s *Server) Upsert(e SeedSecret) (arn, versionID string, err error) {
	if err := e.validate(); err != nil {
		return "", "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	sec := s.store.resolveName(e.Name)
	if sec == nil {
		if sec, _, err = s.store.create(createSecretInput{name: e.Name}, now); err != nil {
			return "", "", fmt.Errorf("creating secret %q: %w", e.Name, err)
		}
	}
	v, err := s.store.putValue(sec, "", e.value(), e.Stages, now)
	if err != nil {
		return "", "", fmt.Errorf("putting a value into secret %q: %w", e.Name, err)
	}
	return sec.arn, v.id, nil
}

// Seed upserts every entry, in order.
func (s *Server) Seed(entries []SeedSecret) error {
	for _, e := range entries {
		if _, _, err := s.Upsert(e); err != nil {
			return err
		}
	}
	return nil
}

// Handler serves the fake with GET /healthz and, when admin is true, the
// admin API under /_fake/. Everything else reaches the fake itself.
func (s *Server) Handler(admin bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	if admin {
		mux.Handle("/_fake/", s.AdminHandler())
	}
	mux.Handle("/", s)
	return mux
}

// AdminHandler serves the admin API:
//
//	POST   /_fake/secrets   create or add a version: a SeedSecret
//	GET    /_fake/secrets   names, ARNs and version stages (no values)
//	POST   /_fake/faults    inject a FaultJSON
//	GET    /_fake/faults    the faults in effect
//	DELETE /_fake/faults    clear faults
//	GET    /_fake/requests  the request log; ?operation=&secretId= filter it
//	DELETE /_fake/requests  empty the request log
//	GET    /_fake/count     {"count": n}; ?operation=&secretId= as Count
//	GET    /_fake/roles     the roles assumed through the fake STS
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /_fake/secrets", s.adminUpsert)
	mux.HandleFunc("GET /_fake/secrets", s.adminSecrets)
	mux.HandleFunc("POST /_fake/faults", s.adminInjectFault)
	mux.HandleFunc("GET /_fake/faults", s.adminFaults)
	mux.HandleFunc("DELETE /_fake/faults", func(w http.ResponseWriter, r *http.Request) {
		s.ClearFaults()
		s.logger.Info("admin: faults cleared")
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /_fake/requests", s.adminRequests)
	mux.HandleFunc("DELETE /_fake/requests", func(w http.ResponseWriter, r *http.Request) {
		s.ResetRequests()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /_fake/count", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		writeAdminJSON(w, http.StatusOK, map[string]int{"count": s.Count(q.Get("operation"), q.Get("secretId"))})
	})
	mux.HandleFunc("GET /_fake/roles", s.adminRoles)
	return mux
}

// decodeAdmin reads one JSON document strictly.
func decodeAdmin(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decoding the request body: %w", jsonProblem(err))
	}
	return nil
}

func writeAdminJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func adminError(w http.ResponseWriter, status int, err error) {
	writeAdminJSON(w, status, map[string]string{"error": err.Error()})
}

func (s *Server) adminUpsert(w http.ResponseWriter, r *http.Request) {
	var e SeedSecret
	if err := decodeAdmin(r, &e); err != nil {
		adminError(w, http.StatusBadRequest, err)
		return
	}
	arn, versionID, err := s.Upsert(e)
	if err != nil {
		adminError(w, http.StatusBadRequest, err)
		return
	}
	s.logger.Info("admin: secret stored", slog.String("secret_id", arn), slog.String("version_id", versionID))
	writeAdminJSON(w, http.StatusOK, map[string]string{"arn": arn, "name": e.Name, "versionId": versionID})
}

type secretJSON struct {
	Name          string              `json:"name"`
	ARN           string              `json:"arn"`
	VersionStages map[string][]string `json:"versionStages"`
}

func (s *Server) adminSecrets(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	out := []secretJSON{}
	for _, sec := range s.store.secrets {
		stages := map[string][]string{}
		for _, v := range sec.versions {
			stages[v.id] = slices.Clone(v.stages)
		}
		out = append(out, secretJSON{Name: sec.name, ARN: sec.arn, VersionStages: stages})
	}
	s.mu.Unlock()
	writeAdminJSON(w, http.StatusOK, out)
}

// FaultJSON is a Fault in the admin API, with Latency as a Go duration
// string such as "250ms".
type FaultJSON struct {
	Operation string `json:"operation,omitempty"`
	SecretID  string `json:"secretId,omitempty"`
	Code      string `json:"code,omitempty"`
	Status    int    `json:"status,omitempty"`
	Message   string `json:"message,omitempty"`
	Count     int    `json:"count,omitempty"`
	Latency   string `json:"latency,omitempty"`
}

func (f FaultJSON) fault() (Fault, error) {
	out := Fault{Operation: f.Operation, SecretID: f.SecretID, Code: f.Code, Status: f.Status, Message: f.Message, Count: f.Count}
	if f.Latency != "" {
		d, err := time.ParseDuration(f.Latency)
		if err != nil {
			return Fault{}, fmt.Errorf("parsing latency: %w", err)
		}
		out.Latency = d
	}
	switch {
	case out.Count < 0:
		return Fault{}, errors.New("count must not be negative")
	case out.Latency < 0:
		return Fault{}, errors.New("latency must not be negative")
	case out.Status != 0 && (out.Status < 400 || out.Status > 599):
		return Fault{}, errors.New("status must be an HTTP error status (400-599)")
	case out.Code == "" && out.Latency == 0:
		return Fault{}, errors.New("a fault needs a code, a latency, or both")
	}
	return out, nil
}

func faultToJSON(f Fault) FaultJSON {
	out := FaultJSON{Operation: f.Operation, SecretID: f.SecretID, Code: f.Code, Status: f.Status, Message: f.Message, Count: f.Count}
	if f.Latency != 0 {
		out.Latency = f.Latency.String()
	}
	return out
}

func (s *Server) adminInjectFault(w http.ResponseWriter, r *http.Request) {
	var in FaultJSON
	if err := decodeAdmin(r, &in); err != nil {
		adminError(w, http.StatusBadRequest, err)
		return
	}
	f, err := in.fault()
	if err != nil {
		adminError(w, http.StatusBadRequest, err)
		return
	}
	s.InjectFault(f)
	s.logger.Info("admin: fault injected", slog.String("operation", f.Operation), slog.String("secret_id", f.SecretID),
		slog.String("code", f.Code), slog.Int("count", f.Count), slog.Duration("latency", f.Latency))
	writeAdminJSON(w, http.StatusOK, faultToJSON(f))
}

func (s *Server) adminFaults(w http.ResponseWriter, r *http.Request) {
	out := []FaultJSON{}
	for _, f := range s.Faults() {
		out = append(out, faultToJSON(f))
	}
	writeAdminJSON(w, http.StatusOK, out)
}

// RequestJSON is a Request in the admin API.
type RequestJSON struct {
	Operation   string    `json:"operation"`
	SecretID    string    `json:"secretId,omitempty"`
	SecretIDs   []string  `json:"secretIds,omitempty"`
	AccessKeyID string    `json:"accessKeyId,omitempty"`
	UserAgent   string    `json:"userAgent,omitempty"`
	Code        string    `json:"code,omitempty"`
	Status      int       `json:"status"`
	Time        time.Time `json:"time"`
}

func (s *Server) adminRequests(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	op, id := q.Get("operation"), q.Get("secretId")
	out := []RequestJSON{}
	for _, req := range s.Requests() {
		if req.matches(op, id) {
			out = append(out, RequestJSON(req))
		}
	}
	writeAdminJSON(w, http.StatusOK, out)
}

// RoleJSON is an AssumedRole in the admin API.
type RoleJSON struct {
	RoleARN     string    `json:"roleArn"`
	SessionName string    `json:"sessionName"`
	Subject     string    `json:"subject"`
	AccessKeyID string    `json:"accessKeyId"`
	Expiration  time.Time `json:"expiration"`
}

func (s *Server) adminRoles(w http.ResponseWriter, r *http.Request) {
	out := []RoleJSON{}
	for _, role := range s.AssumedRoles() {
		out = append(out, RoleJSON(role))
	}
	writeAdminJSON(w, http.StatusOK, out)
}
