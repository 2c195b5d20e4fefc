package smfake

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// The conformance tests replay the wire snapshots that ship with the SDK
// module we pin (request_snapshot/ and response_snapshot/ in the
// secretsmanager module directory). They are the SDK's own record of what
// it sends and what it can decode, so checking the fake against them keeps
// the two from drifting apart when the SDK is upgraded.

const smModule = "github.com/aws/aws-sdk-go-v2/service/secretsmanager"

var sdkDir = sync.OnceValues(func() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", smModule).Output()
	if err != nil {
		return "", fmt.Errorf("locating %s with go list: %w", smModule, err)
	}
	return strings.TrimSpace(string(out)), nil
})

func snapshotPath(t *testing.T, elem ...string) string {
	t.Helper()
	dir, err := sdkDir()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(append([]string{dir}, elem...)...)
}

// wireSnapshot is one parsed snapshot file. Request snapshots start with
// "METHOD PATH" and a query line; response snapshots with a status line.
// Headers, a blank line and the body follow.
type wireSnapshot struct {
	method, path, query string
	status              int
	header              http.Header
	body                []byte
}

func readSnapshot(t *testing.T, path string, request bool) wireSnapshot {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading snapshot: %v", err)
	}
	r := bufio.NewReader(bytes.NewReader(raw))
	line := func() string {
		s, err := r.ReadString('\n')
		if err != nil && err != io.EOF {
			t.Fatal(err)
		}
		return strings.TrimRight(s, "\r\n")
	}
	var snap wireSnapshot
	first := line()
	if request {
		var ok bool
		if snap.method, snap.path, ok = strings.Cut(first, " "); !ok {
			t.Fatalf("%s: request line %q", path, first)
		}
		snap.query = line()
	} else if snap.status, err = strconv.Atoi(first); err != nil {
		t.Fatalf("%s: status line %q", path, first)
	}
	snap.header = http.Header{}
	for {
		l := line()
		if l == "" {
			break
		}
		k, v, ok := strings.Cut(l, ": ")
		if !ok {
			t.Fatalf("%s: header line %q", path, l)
		}
		snap.header.Add(k, v)
	}
	if snap.body, err = io.ReadAll(r); err != nil {
		t.Fatal(err)
	}
	return snap
}

// requestShapes are the types the fake decodes each operation's input into.
var requestShapes = map[string]reflect.Type{
	"GetSecretValue":      reflect.TypeFor[getSecretValueRequest](),
	"BatchGetSecretValue": reflect.TypeFor[batchGetSecretValueRequest](),
	"DescribeSecret":      reflect.TypeFor[describeSecretRequest](),
	"CreateSecret":        reflect.TypeFor[createSecretRequest](),
	"PutSecretValue":      reflect.TypeFor[putSecretValueRequest](),
	"ListSecrets":         reflect.TypeFor[listSecretsRequest](),
}

func TestConformanceRequestSnapshots(t *testing.T) {
	if got, want := slices.Sorted(maps.Keys(requestShapes)), Operations(); !slices.Equal(got, want) {
		t.Fatalf("requestShapes covers %v, the fake implements %v", got, want)
	}
	s, ts := start(t)
	for _, op := range Operations() {
		t.Run(op, func(t *testing.T) {
			snap := readSnapshot(t, snapshotPath(t, "request_snapshot", op+".request.snap"), true)
			if snap.method != http.MethodPost || snap.path != "/" || snap.query != "" {
				t.Errorf("SDK sends %s %s?%s; the fake answers POST /", snap.method, snap.path, snap.query)
			}
			if got := snap.header.Get("Content-Type"); got != jsonContentType {
				t.Errorf("SDK sends Content-Type %q; the fake expects %q", got, jsonContentType)
			}
			if got := snap.header.Get("X-Amz-Target"); got != targetPrefix+op {
				t.Errorf("SDK sends X-Amz-Target %q; the fake expects %q", got, targetPrefix+op)
			}

			// Every member the SDK can send is one the fake's shape has...
			shape := reflect.New(requestShapes[op]).Interface()
			dec := json.NewDecoder(bytes.NewReader(snap.body))
			dec.DisallowUnknownFields()
			if err := dec.Decode(shape); err != nil {
				t.Errorf("the fake's %s shape cannot hold the SDK's request: %v", op, err)
			}
			// ...and every member the fake reads is one the SDK sends, with
			// the same spelling.
			var doc any
			if err := json.Unmarshal(snap.body, &doc); err != nil {
				t.Fatal(err)
			}
			for _, p := range membersMissingFrom(requestShapes[op], doc, op) {
				t.Errorf("the fake reads %s, which the SDK never sends", p)
			}

			// Replaying the request, signed, reaches the operation: the
			// fake parses it and answers 200 or an error of the service's
			// own (the placeholder IDs name no secret).
			status, h, body := replay(t, ts.URL, snap)
			if got := h.Get("Content-Type"); got != jsonContentType {
				t.Errorf("answer Content-Type %q", got)
			}
			if status != http.StatusOK {
				switch code := errorCode(t, body); code {
				case codeResourceNotFound, codeInvalidParameter, codeInvalidRequest, codeInvalidNextToken:
				default:
					t.Errorf("replayed request answered %d %s", status, code)
				}
			}
		})
	}
	if n := s.Count("", ""); n != len(Operations()) {
		t.Errorf("the fake logged %d requests, want %d", n, len(Operations()))
	}
}

// membersMissingFrom lists the JSON members of typ (recursively) that doc
// does not have.
func membersMissingFrom(typ reflect.Type, doc any, path string) []string {
	for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
		if typ.Kind() == reflect.Slice && typ.Elem().Kind() == reflect.Uint8 {
			return nil // []byte is a base64 string
		}
		if typ.Kind() == reflect.Slice {
			arr, ok := doc.([]any)
			if !ok || len(arr) == 0 {
				return []string{path + " (as a list)"}
			}
			doc = arr[0]
		}
		typ = typ.Elem()
	}
	if typ.Kind() != reflect.Struct {
		return nil
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		return []string{path + " (as an object)"}
	}
	var missing []string
	for f := range typ.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		v, ok := obj[name]
		if !ok {
			missing = append(missing, path+"."+name)
			continue
		}
		missing = append(missing, membersMissingFrom(f.Type, v, path+"."+name)...)
	}
	return missing
}

// replay sends a snapshot request to the fake, signed with the default
// credentials as the SDK would sign it.
func replay(t *testing.T, url string, snap wireSnapshot) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(snap.method, url+snap.path, bytes.NewReader(snap.body))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range snap.header {
		req.Header[k] = vs
	}
	sum := sha256.Sum256(snap.body)
	if err := v4.NewSigner().SignHTTP(context.Background(), staticCreds, req, hex.EncodeToString(sum[:]), "secretsmanager", DefaultRegion, time.Now()); err != nil {
		t.Fatal(err)
	}
	return exchange(t, req)
}

// conform lists where got (the fake's JSON) has a member that want (the
// SDK's snapshot) lacks, or a member of another JSON type. A snapshot
// object whose only key is "key0" stands for a map.
func conform(path string, got, want any) []string {
	switch g := got.(type) {
	case map[string]any:
		w, ok := want.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: object, snapshot has %T", path, want)}
		}
		var probs []string
		if v, isMap := w["key0"]; isMap && len(w) == 1 {
			for _, k := range slices.Sorted(maps.Keys(g)) {
				probs = append(probs, conform(path+"["+k+"]", g[k], v)...)
			}
			return probs
		}
		for _, k := range slices.Sorted(maps.Keys(g)) {
			wv, ok := w[k]
			if !ok {
				probs = append(probs, path+"."+k+": not in the SDK's snapshot")
				continue
			}
			probs = append(probs, conform(path+"."+k, g[k], wv)...)
		}
		return probs
	case []any:
		w, ok := want.([]any)
		if !ok || len(w) == 0 {
			return []string{fmt.Sprintf("%s: list, snapshot has %T", path, want)}
		}
		var probs []string
		for i, v := range g {
			probs = append(probs, conform(fmt.Sprintf("%s[%d]", path, i), v, w[0])...)
		}
		return probs
	default:
		if reflect.TypeOf(got) != reflect.TypeOf(want) {
			return []string{fmt.Sprintf("%s: %T, snapshot has %T", path, got, want)}
		}
		return nil
	}
}

func decodeDoc(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("decoding a %d-byte answer: %v", len(b), err)
	}
	return doc
}

func TestConformanceResponseSnapshots(t *testing.T) {
	s, ts := start(t)
	send := func(op, body string) (int, http.Header, []byte) {
		return rawRequest{op: op, body: body}.send(t, ts.URL)
	}
	// A secret with every member the fake can answer: description, KMS key,
	// tags, two versions, a read.
	if status, _, b := send("CreateSecret", `{"Name":"rich","SecretString":"v1","Description":"d","KmsKeyId":"alias/k","Tags":[{"Key":"k","Value":"v"}]}`); status != http.StatusOK {
		t.Fatalf("seeding: %d %s", status, errorCode(t, b))
	}
	if _, err := s.PutSecretValue("rich", Value{String: "v2"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CreateSecret("bin", Value{Binary: []byte{1, 2}}); err != nil {
		t.Fatal(err)
	}
	send("GetSecretValue", `{"SecretId":"rich"}`)

	tests := []struct {
		op       string
		body     string
		wantKeys []string // top-level members the answer must have, so the check is not vacuous
	}{
		{"GetSecretValue", `{"SecretId":"rich"}`, []string{"ARN", "Name", "VersionId", "SecretString", "VersionStages", "CreatedDate"}},
		{"GetSecretValue", `{"SecretId":"bin"}`, []string{"ARN", "Name", "VersionId", "SecretBinary", "VersionStages", "CreatedDate"}},
		{"BatchGetSecretValue", `{"SecretIdList":["rich","bin","missing"]}`, []string{"SecretValues", "Errors"}},
		{"BatchGetSecretValue", `{"Filters":[{"Key":"name","Values":["rich","bin"]}],"MaxResults":1}`, []string{"SecretValues", "Errors", "NextToken"}},
		{"DescribeSecret", `{"SecretId":"rich"}`, []string{"ARN", "Name", "Description", "KmsKeyId", "CreatedDate", "LastChangedDate", "LastAccessedDate", "Tags", "VersionIdsToStages"}},
		{"CreateSecret", `{"Name":"new","SecretString":"x"}`, []string{"ARN", "Name", "VersionId"}},
		{"PutSecretValue", `{"SecretId":"rich","SecretBinary":"AAE=","VersionStages":["AWSPENDING"]}`, []string{"ARN", "Name", "VersionId", "VersionStages"}},
		{"ListSecrets", `{"MaxResults":1,"SortBy":"name","SortOrder":"desc"}`, []string{"SecretList", "NextToken"}},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.op] = true
		t.Run(tt.op, func(t *testing.T) {
			snap := readSnapshot(t, snapshotPath(t, "response_snapshot", tt.op+".response.snap"), false)
			status, h, body := send(tt.op, tt.body)
			if status != snap.status {
				t.Fatalf("status %d (%s), snapshot %d", status, errorCode(t, body), snap.status)
			}
			if got, want := h.Get("Content-Type"), snap.header.Get("Content-Type"); got != want {
				t.Errorf("Content-Type %q, snapshot %q", got, want)
			}
			got := decodeDoc(t, body)
			for _, p := range conform(tt.op, got, decodeDoc(t, snap.body)) {
				t.Error(p)
			}
			for _, k := range tt.wantKeys {
				if _, ok := got[k]; !ok {
					t.Errorf("answer lacks %s", k)
				}
			}
		})
	}
	for _, op := range Operations() {
		if !covered[op] {
			t.Errorf("no response case for %s", op)
		}
	}
}

func TestConformanceErrorSnapshots(t *testing.T) {
	snaps, err := filepath.Glob(snapshotPath(t, "response_snapshot", "*.error.snap"))
	if err != nil || len(snaps) == 0 {
		t.Fatalf("no error snapshots found: %v", err)
	}
	// Errors the fake produces on its own, besides injected ones.
	natural := map[string]rawRequest{
		codeResourceNotFound: {op: "GetSecretValue", body: `{"SecretId":"missing"}`},
		codeInvalidParameter: {op: "PutSecretValue", body: `{"SecretId":"exists"}`},
		codeResourceExists:   {op: "CreateSecret", body: `{"Name":"exists","SecretString":"x"}`},
		codeInvalidNextToken: {op: "ListSecrets", body: `{"NextToken":"x"}`},
	}
	for _, path := range snaps {
		code := strings.TrimSuffix(filepath.Base(path), ".error.snap")
		t.Run(code, func(t *testing.T) {
			snap := readSnapshot(t, path, false)
			want := decodeDoc(t, snap.body)
			check := func(how string, status int, h http.Header, body []byte) {
				t.Helper()
				if status != snap.status {
					t.Errorf("%s: status %d, snapshot %d", how, status, snap.status)
				}
				if got, want := h.Get("Content-Type"), snap.header.Get("Content-Type"); got != want {
					t.Errorf("%s: Content-Type %q, snapshot %q", how, got, want)
				}
				got := decodeDoc(t, body)
				if !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want))) {
					t.Errorf("%s: members %v, snapshot %v", how, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
				}
				for _, p := range conform(code, got, want) {
					t.Errorf("%s: %s", how, p)
				}
				if got["__type"] != code || h.Get("X-Amzn-ErrorType") != code {
					t.Errorf("%s: __type %v, X-Amzn-ErrorType %q; want %s", how, got["__type"], h.Get("X-Amzn-ErrorType"), code)
				}
			}

			s, ts := start(t)
			mustCreate(t, s, "exists", "v")
			s.InjectFault(Fault{Operation: "GetSecretValue", Code: code, Count: 1})
			status, h, body := rawRequest{op: "GetSecretValue", body: `{"SecretId":"exists"}`}.send(t, ts.URL)
			check("injected", status, h, body)
			if rr, ok := natural[code]; ok {
				status, h, body := rr.send(t, ts.URL)
				check("natural", status, h, body)
			}
		})
	}
}
