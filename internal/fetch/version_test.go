package fetch

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/secretfetch/secretfetch/internal/plan"
	"github.com/secretfetch/secretfetch/internal/smfake/smfaketest"
)

// TestVersionIDShapeRefused: a version ID from the endpoint is written to
// the refresh state, the logs and the notification, and compared on every
// poll. One that does not have the shape AWS documents (32 to 64 letters,
// digits and '-') comes from something posing as Secrets Manager: it is
// refused, never quoted, and not retried, like a malformed error code.
func TestVersionIDShapeRefused(t *testing.T) {
	const good = "EXAMPLE1-90ab-cdef-fedc-ba987EXAMPLE"
	for _, tt := range []struct {
		name    string
		version any // nil: no VersionId member
		ok      bool
	}{
		{"an AWS version ID", good, true},
		{"64 characters", strings.Repeat("a", 64), true},
		{"200 KiB", strings.Repeat("HOSTILE-", 25<<10), false},
		{"65 characters", strings.Repeat("a", 65), false},
		{"too short", "v1", false},
		{"a new line", good[:20] + "\n" + good[21:], false},
		{"a quote", good[:20] + `"` + good[21:], false},
		{"a non-ASCII letter", good[:20] + "é" + good[22:], false},
		{"empty", "", false},
		{"missing", nil, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			smfaketest.IsolateEnv(t)
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				io.Copy(io.Discard, r.Body)
				answer := map[string]any{"ARN": "arn:aws:secretsmanager:us-east-1:111122223333:secret:app/db-AbCdEf",
					"Name": "app/db", "SecretString": hostileValue, "VersionStages": []string{"AWSCURRENT"}, "CreatedDate": 1.7e9}
				if tt.version != nil {
					answer["VersionId"] = tt.version
				}
				w.Header().Set("Content-Type", "application/x-amz-json-1.1")
				json.NewEncoder(w).Encode(answer)
			}))
			defer srv.Close()
			o := Options{Clients: fakeClients(t, srv.URL, "us-east-1"), NewBackOff: fastBackOff}
			// Only a connection cut by the transport's race is retried
			// (see retriedOnlyConnections), never the answer.
			o.OnRetry = retriedOnlyConnections(t)
			res, err := Fetch(context.Background(), onePlan(plan.Secret{File: "db", ID: "app/db"}, plan.Secret{File: "db2", ID: "app/db"}), o)
			if tt.ok {
				if err != nil {
					t.Fatalf("Fetch: %v", Truncate(err.Error(), 300))
				}
				if res[0].VersionID != tt.version {
					t.Errorf("VersionID of %d bytes, want the answer's %d", len(res[0].VersionID), len(tt.version.(string)))
				}
				return
			}
			var fe *Error
			if !errors.As(err, &fe) || len(fe.Failures) != 2 {
				t.Fatalf("Fetch error = %.300v, want both files refused", err)
			}
			for _, f := range fe.Failures {
				if f.Code != CodeMalformedVersionID {
					t.Errorf("file %s: code %s, want %s", f.File, f.Code, CodeMalformedVersionID)
				}
			}
			if n := calls.Load(); int(n) != fe.Failures[0].Attempts {
				t.Errorf("%d requests for %d attempts: both files must come from one request", n, fe.Failures[0].Attempts)
			}
			msg := err.Error()
			if v, _ := tt.version.(string); v != "" && strings.Contains(msg, v) || strings.Contains(msg, "HOSTILE") || strings.Contains(msg, hostileValue) {
				t.Error("the error quotes the version ID or the value")
			}
			if len(msg) > 2*MaxErrorText {
				t.Errorf("the error is %d bytes long", len(msg))
			}
		})
	}
}
