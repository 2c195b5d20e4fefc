package smfake

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The Secrets Manager side speaks AWS's JSON 1.1 protocol: every call is a
// POST / with the operation in X-Amz-Target and a JSON document for input
// and output. Member names are the model's (ARN, SecretId, CreatedDate...),
// timestamps are epoch seconds as JSON numbers, blobs are base64 strings.

const (
	targetPrefix    = "secretsmanager."
	jsonContentType = "application/x-amz-json-1.1"
)

// epochSeconds marshals a time as AWS JSON protocols do: seconds since the
// epoch as a number, with millisecond fractions.
type epochSeconds time.Time

func (t epochSeconds) MarshalJSON() ([]byte, error) {
	ms := time.Time(t).UnixMilli()
	return strconv.AppendFloat(nil, float64(ms)/1000, 'f', -1, 64), nil
}

func epochPtr(t time.Time) *epochSeconds {
	if t.IsZero() {
		return nil
	}
	e := epochSeconds(t)
	return &e
}

// Request shapes. They carry every member the SDK can send, so that the
// conformance test can decode the SDK's request snapshots strictly; the
// members the fake does not act on are checked or ignored where the
// handler says so.

type getSecretValueRequest struct {
	SecretId     string `json:"SecretId"`
	VersionId    string `json:"VersionId"`
	VersionStage string `json:"VersionStage"`
}

type filter struct {
	Key    string   `json:"Key"`
	Values []string `json:"Values"`
}

type batchGetSecretValueRequest struct {
	SecretIdList []string `json:"SecretIdList"`
	Filters      []filter `json:"Filters"`
	MaxResults   *int     `json:"MaxResults"`
	NextToken    string   `json:"NextToken"`
}

type describeSecretRequest struct {
	SecretId string `json:"SecretId"`
}

type replicaRegion struct {
	KmsKeyId string `json:"KmsKeyId"`
	Region   string `json:"Region"`
}

type createSecretRequest struct {
	Name                        string          `json:"Name"`
	ClientRequestToken          string          `json:"ClientRequestToken"`
	Description                 string          `json:"Description"`
	KmsKeyId                    string          `json:"KmsKeyId"`
	SecretString                *string         `json:"SecretString"`
	SecretBinary                []byte          `json:"SecretBinary"`
	Tags                        []Tag           `json:"Tags"`
	AddReplicaRegions           []replicaRegion `json:"AddReplicaRegions"`
	ForceOverwriteReplicaSecret bool            `json:"ForceOverwriteReplicaSecret"`
	Type                        string          `json:"Type"`
}

type putSecretValueRequest struct {
	SecretId           string   `json:"SecretId"`
	ClientRequestToken string   `json:"ClientRequestToken"`
	SecretString       *string  `json:"SecretString"`
	SecretBinary       []byte   `json:"SecretBinary"`
	VersionStages      []string `json:"VersionStages"`
	RotationToken      string   `json:"RotationToken"`
}

type listSecretsRequest struct {
	Filters                []filter `json:"Filters"`
	IncludePlannedDeletion bool     `json:"IncludePlannedDeletion"`
	MaxResults             *int     `json:"MaxResults"`
	NextToken              string   `json:"NextToken"`
	SortBy                 string   `json:"SortBy"`
	SortOrder              string   `json:"SortOrder"`
}

// Response shapes: only members that the SDK's response snapshots have.

type secretValueEntry struct {
	ARN           string       `json:"ARN"`
	Name          string       `json:"Name"`
	VersionId     string       `json:"VersionId"`
	SecretString  *string      `json:"SecretString,omitempty"`
	SecretBinary  *[]byte      `json:"SecretBinary,omitempty"`
	VersionStages []string     `json:"VersionStages,omitempty"`
	CreatedDate   epochSeconds `json:"CreatedDate"`
}

type batchErrorEntry struct {
	SecretId  string `json:"SecretId"`
	ErrorCode string `json:"ErrorCode"`
	Message   string `json:"Message"`
}

type batchGetSecretValueResponse struct {
	SecretValues []secretValueEntry `json:"SecretValues"`
	Errors       []batchErrorEntry  `json:"Errors"`
	NextToken    string             `json:"NextToken,omitempty"`
}

type secretMetadata struct {
	ARN              string        `json:"ARN"`
	Name             string        `json:"Name"`
	Description      string        `json:"Description,omitempty"`
	KmsKeyId         string        `json:"KmsKeyId,omitempty"`
	CreatedDate      *epochSeconds `json:"CreatedDate,omitempty"`
	LastChangedDate  *epochSeconds `json:"LastChangedDate,omitempty"`
	LastAccessedDate *epochSeconds `json:"LastAccessedDate,omitempty"`
	Tags             []Tag         `json:"Tags,omitempty"`
}

type describeSecretResponse struct {
	secretMetadata
	VersionIdsToStages map[string][]string `json:"VersionIdsToStages,omitempty"`
}

type listSecretsEntry struct {
	secretMetadata
	SecretVersionsToStages map[string][]string `json:"SecretVersionsToStages,omitempty"`
}

type listSecretsResponse struct {
	SecretList []listSecretsEntry `json:"SecretList"`
	NextToken  string             `json:"NextToken,omitempty"`
}

type createSecretResponse struct {
	ARN       string `json:"ARN"`
	Name      string `json:"Name"`
	VersionId string `json:"VersionId,omitempty"`
}

type putSecretValueResponse struct {
	ARN           string   `json:"ARN"`
	Name          string   `json:"Name"`
	VersionId     string   `json:"VersionId"`
	VersionStages []string `json:"VersionStages"`
}

type errorBody struct {
	Type    string `json:"__type"`
	Message string `json:"Message"`
}

// jsonOperation handles one decoded operation. It runs after
// authentication and faults, under no lock.
type jsonOperation func(s *Server, ctx context.Context, call *call, body []byte) (any, error)

// call is what a handler knows about the request beyond its body.
type call struct {
	op        string
	principal string // the caller's ARN, for AccessDenied messages
}

// operations are the Secrets Manager operations the fake implements.
var operations = map[string]jsonOperation{
	"GetSecretValue":      (*Server).getSecretValue,
	"BatchGetSecretValue": (*Server).batchGetSecretValue,
	"DescribeSecret":      (*Server).describeSecret,
	"CreateSecret":        (*Server).createSecret,
	"PutSecretValue":      (*Server).putSecretValue,
	"ListSecrets":         (*Server).listSecrets,
}

// Operations returns the names of the implemented Secrets Manager
// operations, sorted.
func Operations() []string {
	ops := make([]string, 0, len(operations))
	for op := range operations {
		ops = append(ops, op)
	}
	slices.Sort(ops)
	return ops
}

// idsForLog is the subset of every request shape that names secrets. It is
// decoded before authentication so that failed requests are logged with the
// secret they were after.
type idsForLog struct {
	SecretId     string   `json:"SecretId"`
	Name         string   `json:"Name"`
	SecretIdList []string `json:"SecretIdList"`
}

func (s *Server) serveJSON(w http.ResponseWriter, r *http.Request, rec *Request) {
	out, err := s.handleJSON(w, r, rec)
	h := w.Header()
	h.Set("Content-Type", jsonContentType)
	if id, uerr := newUUID(); uerr == nil {
		h.Set("X-Amzn-Requestid", id)
	}
	if err != nil {
		var apiErr *APIError
		if !errors.As(err, &apiErr) {
			apiErr = apiErrorf(codeInternalServiceError, "An error occurred on the server side.")
		}
		rec.Code, rec.Status = apiErr.Code, apiErr.HTTPStatus()
		h.Set("X-Amzn-Errortype", apiErr.Code)
		writeJSONBody(w, rec.Status, errorBody{Type: apiErr.Code, Message: apiErr.Message})
		return
	}
	rec.Status = http.StatusOK
	writeJSONBody(w, http.StatusOK, out)
}

func writeJSONBody(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only the fake's own types are marshalled; this cannot carry a value.
		status = http.StatusInternalServerError
		b = []byte(`{"__type":"InternalServiceError","Message":"marshalling the response failed"}`)
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func (s *Server) handleJSON(w http.ResponseWriter, r *http.Request, rec *Request) (any, error) {
	target := r.Header.Get("X-Amz-Target")
	op, isSM := strings.CutPrefix(target, targetPrefix)
	rec.Operation = op
	body, err := readBody(w, r)
	if err != nil {
		return nil, apiErrorf(codeSerialization, "The request body could not be read.")
	}
	var ids idsForLog
	if json.Unmarshal(body, &ids) == nil {
		rec.SecretID = ids.SecretId
		if op == "CreateSecret" {
			rec.SecretID = ids.Name
		}
		rec.SecretIDs = ids.SecretIdList
	}

	if r.Method != http.MethodPost || r.URL.Path != "/" || !isSM {
		return nil, apiErrorf(codeUnknownOperation, "Secrets Manager answers POST / with an X-Amz-Target of secretsmanager.<Operation>.")
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil ||
		(mt != jsonContentType && mt != "application/x-amz-json-1.0") {
		return nil, apiErrorf(codeUnknownOperation, "Content-Type must be %s.", jsonContentType)
	}

	id, err := s.authenticate(r, body, "secretsmanager")
	rec.AccessKeyID = id.accessKeyID
	if err != nil {
		return nil, err
	}
	handler, ok := operations[op]
	if !ok {
		return nil, apiErrorf(codeUnknownOperation, "The fake does not implement secretsmanager.%s; it implements %s.", op, strings.Join(Operations(), ", "))
	}
	c := &call{op: op, principal: id.principal}
	// A batch call's per-secret faults land in its Errors[], not on the
	// whole call; see batchGetSecretValue.
	if err := s.applyFault(r.Context(), c, rec.SecretID, op == "BatchGetSecretValue"); err != nil {
		return nil, err
	}
	return handler(s, r.Context(), c, body)
}

// decode reads a request document. Unknown members are ignored, as AWS
// ignores them; a member of the wrong JSON type is a SerializationException.
func decode(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return apiErrorf(codeSerialization, "The request document could not be parsed: %v", jsonProblem(err))
	}
	return nil
}

func requireID(id, member string) error {
	if id == "" {
		return apiErrorf(codeInvalidParameter, "You must provide a value for the %s parameter.", member)
	}
	return nil
}

func (s *Server) getSecretValue(ctx context.Context, c *call, body []byte) (any, error) {
	var in getSecretValueRequest
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if err := requireID(in.SecretId, "SecretId"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	entry, err := s.readValue(in.SecretId, in.VersionId, in.VersionStage)
	if err != nil {
		return nil, err
	}
	return entry, nil
}

// readValue picks a version and records the access. The caller holds s.mu.
func (s *Server) readValue(id, versionID, stage string) (secretValueEntry, error) {
	sec := s.store.resolve(id)
	if sec == nil {
		return secretValueEntry{}, errSecretNotFound()
	}
	v, err := sec.pick(versionID, stage)
	if err != nil {
		return secretValueEntry{}, err
	}
	// AWS records the last access to the day, not the instant.
	sec.accessed = s.now().UTC().Truncate(24 * time.Hour)
	entry := secretValueEntry{
		ARN:           sec.arn,
		Name:          sec.name,
		VersionId:     v.id,
		VersionStages: slices.Clone(v.stages),
		CreatedDate:   epochSeconds(v.created),
	}
	if v.value.isBinary() {
		b := bytes.Clone(v.value.Binary)
		if b == nil {
			b = []byte{}
		}
		entry.SecretBinary = &b
	} else {
		str := v.value.String
		entry.SecretString = &str
	}
	return entry, nil
}

// maxBatchIDs is AWS's limit on BatchGetSecretValue's SecretIdList.
const maxBatchIDs = 20

func (s *Server) batchGetSecretValue(ctx context.Context, c *call, body []byte) (any, error) {
	var in batchGetSecretValueRequest
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	hasIDs, hasFilters := in.SecretIdList != nil, in.Filters != nil
	switch {
	case hasIDs && hasFilters:
		return nil, apiErrorf(codeInvalidParameter, "Either 'SecretIdList' or 'Filters' must be provided, but not both.")
	case !hasIDs && !hasFilters:
		return nil, apiErrorf(codeInvalidParameter, "Either 'SecretIdList' or 'Filters' must be provided.")
	case hasIDs && (len(in.SecretIdList) == 0 || len(in.SecretIdList) > maxBatchIDs):
		return nil, apiErrorf(codeInvalidParameter, "SecretIdList must hold 1 to %d secret IDs.", maxBatchIDs)
	}

	ids := in.SecretIdList
	var next string
	if hasFilters {
		// Filters select secrets; a page of their names goes through the
		// same per-secret path as an explicit list.
		s.mu.Lock()
		matched, err := s.filterSecrets(in.Filters)
		var names []string
		for _, sec := range matched {
			names = append(names, sec.name)
		}
		s.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if ids, next, err = paginate(names, in.MaxResults, in.NextToken, maxBatchIDs); err != nil {
			return nil, err
		}
	}

	out := batchGetSecretValueResponse{SecretValues: []secretValueEntry{}, Errors: []batchErrorEntry{}, NextToken: next}
	for _, id := range ids {
		if err := s.applyItemFault(ctx, c, id); err != nil {
			out.Errors = append(out.Errors, batchError(id, err))
			continue
		}
		s.mu.Lock()
		entry, err := s.readValue(id, "", "")
		s.mu.Unlock()
		if err != nil {
			out.Errors = append(out.Errors, batchError(id, err))
			continue
		}
		out.SecretValues = append(out.SecretValues, entry)
	}
	return out, nil
}

func batchError(id string, err error) batchErrorEntry {
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		apiErr = apiErrorf(codeInternalServiceError, "An error occurred on the server side.")
	}
	return batchErrorEntry{SecretId: id, ErrorCode: apiErr.Code, Message: apiErr.Message}
}

func (sec *secret) metadata() secretMetadata {
	return secretMetadata{
		ARN:              sec.arn,
		Name:             sec.name,
		Description:      sec.description,
		KmsKeyId:         sec.kmsKeyID,
		CreatedDate:      epochPtr(sec.created),
		LastChangedDate:  epochPtr(sec.changed),
		LastAccessedDate: epochPtr(sec.accessed),
		Tags:             slices.Clone(sec.tags),
	}
}

func (s *Server) describeSecret(ctx context.Context, c *call, body []byte) (any, error) {
	var in describeSecretRequest
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if err := requireID(in.SecretId, "SecretId"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := s.store.resolve(in.SecretId)
	if sec == nil {
		return nil, errSecretNotFound()
	}
	return describeSecretResponse{secretMetadata: sec.metadata(), VersionIdsToStages: sec.stagesByVersion()}, nil
}

// valueFromRequest turns SecretString/SecretBinary into a Value, requiring
// exactly one of them. ok is false when neither is present.
func valueFromRequest(str *string, bin []byte) (v Value, ok bool, err error) {
	switch {
	case str != nil && bin != nil:
		return Value{}, false, apiErrorf(codeInvalidParameter, "You can't specify both a binary secret value and a string secret value in the same secret.")
	case str != nil:
		return Value{String: *str}, true, nil
	case bin != nil:
		return Value{Binary: bin}, true, nil
	default:
		return Value{}, false, nil
	}
}

func (s *Server) createSecret(ctx context.Context, c *call, body []byte) (any, error) {
	var in createSecretRequest
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if len(in.AddReplicaRegions) > 0 {
		return nil, apiErrorf(codeInvalidParameter, "The fake does not replicate secrets; omit AddReplicaRegions.")
	}
	val, ok, err := valueFromRequest(in.SecretString, in.SecretBinary)
	if err != nil {
		return nil, err
	}
	create := createSecretInput{
		name:        in.Name,
		token:       in.ClientRequestToken,
		description: in.Description,
		kmsKeyID:    in.KmsKeyId,
		tags:        in.Tags,
	}
	if ok {
		create.value = &val
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, v, err := s.store.create(create, s.now())
	if err != nil {
		return nil, err
	}
	out := createSecretResponse{ARN: sec.arn, Name: sec.name}
	if v != nil {
		out.VersionId = v.id
	}
	return out, nil
}

func (s *Server) putSecretValue(ctx context.Context, c *call, body []byte) (any, error) {
	var in putSecretValueRequest
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if err := requireID(in.SecretId, "SecretId"); err != nil {
		return nil, err
	}
	val, ok, err := valueFromRequest(in.SecretString, in.SecretBinary)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, apiErrorf(codeInvalidParameter, "You must provide either SecretString or SecretBinary.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := s.store.resolve(in.SecretId)
	if sec == nil {
		return nil, errSecretNotFound()
	}
	v, err := s.store.putValue(sec, in.ClientRequestToken, val, in.VersionStages, s.now())
	if err != nil {
		return nil, err
	}
	return putSecretValueResponse{ARN: sec.arn, Name: sec.name, VersionId: v.id, VersionStages: slices.Clone(v.stages)}, nil
}

// maxListResults is AWS's limit on ListSecrets' MaxResults.
const maxListResults = 100

func (s *Server) listSecrets(ctx context.Context, c *call, body []byte) (any, error) {
	var in listSecretsRequest
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	matched, err := s.filterSecrets(in.Filters)
	if err != nil {
		return nil, err
	}
	if err := sortSecrets(matched, in.SortBy, in.SortOrder); err != nil {
		return nil, err
	}
	page, next, err := paginate(matched, in.MaxResults, in.NextToken, maxListResults)
	if err != nil {
		return nil, err
	}
	out := listSecretsResponse{SecretList: []listSecretsEntry{}, NextToken: next}
	for _, sec := range page {
		out.SecretList = append(out.SecretList, listSecretsEntry{secretMetadata: sec.metadata(), SecretVersionsToStages: sec.stagesByVersion()})
	}
	return out, nil
}

// filterSecrets applies ListSecrets/BatchGetSecretValue filters: filters
// are ANDed, the values of one filter ORed, a leading "!" negates a value.
// The caller holds s.mu.
func (s *Server) filterSecrets(filters []filter) ([]*secret, error) {
	for _, f := range filters {
		switch f.Key {
		case "name", "description", "tag-key", "tag-value", "primary-region", "owning-service", "all":
		default:
			return nil, apiErrorf(codeInvalidParameter, "Invalid filter key %q: use one of name, description, tag-key, tag-value, primary-region, owning-service, all.", f.Key)
		}
		if len(f.Values) == 0 || len(f.Values) > 10 {
			return nil, apiErrorf(codeInvalidParameter, "A filter needs 1 to 10 values.")
		}
	}
	var out []*secret
	for _, sec := range s.store.secrets {
		if s.matchesAll(sec, filters) {
			out = append(out, sec)
		}
	}
	return out, nil
}

func (s *Server) matchesAll(sec *secret, filters []filter) bool {
	for _, f := range filters {
		matched := false
		for _, v := range f.Values {
			want, negate := strings.CutPrefix(v, "!")
			if s.matchesFilter(sec, f.Key, want) != negate {
				matched = true
				break
			}
		}
		if !matched {
			return false
		}
	}
	return true
}

// matchesFilter is the prefix match AWS documents for each key: case
// sensitive except for description and all.
func (s *Server) matchesFilter(sec *secret, key, want string) bool {
	hasPrefixFold := func(str, prefix string) bool {
		return len(str) >= len(prefix) && strings.EqualFold(str[:len(prefix)], prefix)
	}
	switch key {
	case "name":
		return strings.HasPrefix(sec.name, want)
	case "description":
		return hasPrefixFold(sec.description, want)
	case "tag-key":
		return slices.ContainsFunc(sec.tags, func(t Tag) bool { return strings.HasPrefix(t.Key, want) })
	case "tag-value":
		return slices.ContainsFunc(sec.tags, func(t Tag) bool { return strings.HasPrefix(t.Value, want) })
	case "primary-region":
		return strings.HasPrefix(s.region, want)
	case "owning-service":
		return false // no fake secret is managed by another service
	case "all":
		attrs := []string{sec.name, sec.description}
		for _, t := range sec.tags {
			attrs = append(attrs, t.Key, t.Value)
		}
		for _, word := range strings.Fields(want) {
			if slices.ContainsFunc(attrs, func(a string) bool { return hasPrefixFold(a, word) }) {
				return true
			}
		}
	}
	return false
}

func sortSecrets(secs []*secret, by, order string) error {
	key := func(a, b *secret) int { return a.created.Compare(b.created) }
	switch by {
	case "", "created-date":
	case "last-accessed-date":
		key = func(a, b *secret) int { return a.accessed.Compare(b.accessed) }
	case "last-changed-date":
		key = func(a, b *secret) int { return a.changed.Compare(b.changed) }
	case "name":
		key = func(a, b *secret) int { return strings.Compare(a.name, b.name) }
	default:
		return apiErrorf(codeInvalidParameter, "Invalid SortBy %q: use created-date, last-accessed-date, last-changed-date or name.", by)
	}
	switch order {
	case "asc":
		slices.SortStableFunc(secs, key)
	case "", "desc":
		// Newest first by default. The stable sort keeps creation order
		// among equal keys, so a reversal lists those newest first too.
		slices.SortStableFunc(secs, key)
		slices.Reverse(secs)
	default:
		return apiErrorf(codeInvalidParameter, "Invalid SortOrder %q: use asc or desc.", order)
	}
	return nil
}

// paginate cuts one page out of items. The token is opaque to clients, as
// AWS's is; here it carries the offset of the next page.
func paginate[T any](items []T, maxResults *int, token string, limit int) ([]T, string, error) {
	size := limit
	if maxResults != nil {
		if *maxResults < 1 || *maxResults > limit {
			return nil, "", apiErrorf(codeInvalidParameter, "MaxResults must be between 1 and %d.", limit)
		}
		size = *maxResults
	}
	offset := 0
	if token != "" {
		raw, err := base64.RawURLEncoding.DecodeString(token)
		n, convErr := strconv.Atoi(strings.TrimPrefix(string(raw), "offset:"))
		if err != nil || convErr != nil || !strings.HasPrefix(string(raw), "offset:") || n < 0 || n > len(items) {
			return nil, "", apiErrorf(codeInvalidNextToken, "The NextToken value is invalid.")
		}
		offset = n
	}
	end := min(offset+size, len(items))
	next := ""
	if end < len(items) {
		next = base64.RawURLEncoding.EncodeToString([]byte("offset:" + strconv.Itoa(end)))
	}
	return items[offset:end], next, nil
}
