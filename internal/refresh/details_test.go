//go:build linux

package refresh

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/secretfetch/secretfetch/internal/fetch"
	"github.com/secretfetch/secretfetch/internal/plan"
	"github.com/secretfetch/secretfetch/internal/smfake"
)

// TestPollRefusesMalformedDescribedVersion: a DescribeSecret answer whose
// version ID for the stage does not have the shape of one is refused as the
// first fetch refuses it (fetch.CodeMalformedVersionID): the files are kept,
// nothing is fetched or swapped, and neither the log nor the report quotes
// the ID. Trusted whole, a 200 KiB ID made every poll swap an unchanged set
// and log lines of megabytes.
func TestPollRefusesMalformedDescribedVersion(t *testing.T) {
	for _, tt := range []struct{ name, version string }{
		{"200 KiB", strings.Repeat("HOSTILE-", 25<<10)},
		{"too short", "v1"},
		{"a new line", "EXAMPLE1-90ab-cdef-fedc\nba987EXAMPLE"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var hostile atomic.Bool
			f := newFakeBehind(t, map[string]string{"a": "a1"}, func(fk http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if !hostile.Load() || r.Header.Get("X-Amz-Target") != "secretsmanager.DescribeSecret" {
						fk.ServeHTTP(w, r)
						return
					}
					io.Copy(io.Discard, r.Body)
					w.Header().Set("Content-Type", "application/x-amz-json-1.1")
					json.NewEncoder(w).Encode(map[string]any{"ARN": "arn:aws:secretsmanager:us-east-1:111122223333:secret:a-AbCdEf",
						"Name": "a", "VersionIdsToStages": map[string][]string{tt.version: {"AWSCURRENT"}}})
				})
			})
			app, posts := notifyApp(t)
			e := f.env(t, &plan.Plan{Secrets: []plan.Secret{{File: "a", ID: "a"}}}, Options{NotifyURL: app})
			hostile.Store(true)
			for range 2 {
				rep := e.poll(t)
				if len(rep.Failures) != 1 || rep.Failures[0].Code != fetch.CodeMalformedVersionID || rep.Changed != 0 {
					codes := []string{}
					for _, f := range rep.Failures {
						codes = append(codes, f.Code)
					}
					t.Fatalf("%d changed, failures %q; want one failure %s and no change", rep.Changed, codes, fetch.CodeMalformedVersionID)
				}
				if strings.Contains(rep.Failures[0].Err.Error(), tt.version) {
					t.Error("the failure quotes the version ID")
				}
			}
			if e.read(t, "a") != "a1" {
				t.Error("the file changed")
			}
			if n := e.calls(opGet, ""); n != 0 {
				t.Errorf("%d GetSecretValue calls for a malformed version, want none", n)
			}
			if n := posts.Load(); n != 0 {
				t.Errorf("%d notifications, want none", n)
			}
			if strings.Contains(e.log.String(), tt.version) || strings.Contains(e.log.String(), "HOSTILE") {
				t.Error("the log quotes the version ID")
			}
			for i, line := range strings.Split(strings.TrimSpace(e.log.String()), "\n") {
				if len(line) > 2*fetch.MaxErrorText {
					t.Errorf("log line %d is %d bytes", i, len(line))
				}
			}
		})
	}
}

// TestPollDescribeDeniedRetriedLater: IAM is eventually consistent, so one
// AccessDeniedException from DescribeSecret (a policy just attached, not yet
// in effect) does not settle how the secret is polled for the pod's life.
// DescribeSecret is asked again after a few polls through GetSecretValue,
// and once it is allowed, polling goes back to it.
func TestPollDescribeDeniedRetriedLater(t *testing.T) {
	e := newEnv(t, map[string]string{"a": "val-A1"}, &plan.Plan{Secrets: []plan.Secret{{File: "a", ID: "a"}}}, Options{})
	e.fk.InjectFault(smfake.Fault{Operation: opDescribe, Code: "AccessDeniedException", Count: 1})

	describeAgain := -1
	for i := range 4 {
		if rep := e.poll(t); rep.Unchanged != 1 || len(rep.Failures) != 0 {
			t.Fatalf("poll %d: %+v", i, rep)
		}
		if i > 0 && e.calls(opDescribe, "a") > 0 {
			describeAgain = i
			break
		}
		e.fk.ResetRequests()
	}
	if describeAgain < 0 {
		t.Fatal("DescribeSecret was not asked again after one denial")
	}
	// Allowed now: the poll after uses DescribeSecret alone.
	e.fk.ResetRequests()
	if rep := e.poll(t); rep.Unchanged != 1 {
		t.Fatalf("poll after DescribeSecret is allowed: %+v", rep)
	}
	if d, g := e.calls(opDescribe, "a"), e.calls(opGet, "a"); d != 1 || g != 0 {
		t.Errorf("after DescribeSecret is allowed: %d DescribeSecret, %d GetSecretValue; want 1 and 0", d, g)
	}
	if !strings.Contains(e.log.String(), "DescribeSecret is allowed") {
		t.Error("the log does not say that DescribeSecret is used again")
	}
}

// TestPollDescribeDeniedBacksOff: while DescribeSecret stays denied, it is
// asked again ever more rarely, at most once every maxDescribeSkip+1 polls,
// and the missing permission is logged once, not per poll.
func TestPollDescribeDeniedBacksOff(t *testing.T) {
	e := newEnv(t, map[string]string{"a": "val-A1"}, &plan.Plan{Secrets: []plan.Secret{{File: "a", ID: "a"}}}, Options{})
	e.fk.InjectFault(smfake.Fault{Operation: opDescribe, Code: "AccessDeniedException"})
	const polls = 3 * (maxDescribeSkip + 1)
	var asked []int
	for i := range polls {
		e.fk.ResetRequests()
		if rep := e.poll(t); rep.Unchanged != 1 || len(rep.Failures) != 0 {
			t.Fatalf("poll %d: %+v", i, rep)
		}
		if e.calls(opDescribe, "a") > 0 {
			asked = append(asked, i)
		}
		if g := e.calls(opGet, "a"); g != 1 {
			t.Fatalf("poll %d: %d GetSecretValue, want 1", i, g)
		}
	}
	if len(asked) < 3 || asked[0] != 0 {
		t.Fatalf("DescribeSecret asked at polls %v", asked)
	}
	for j := 1; j < len(asked); j++ {
		gap := asked[j] - asked[j-1]
		if gap > maxDescribeSkip+1 || j > 1 && gap < asked[j-1]-asked[j-2] {
			t.Errorf("DescribeSecret asked at polls %v: gaps must grow, up to %d", asked, maxDescribeSkip+1)
			break
		}
	}
	if n := strings.Count(e.log.String(), `"missingPermission":"secretsmanager:DescribeSecret"`); n != 1 {
		t.Errorf("the missing permission is logged %d times, want once", n)
	}
}

// TestPollSwappedButCleanupFailed: an error of WriteSet after the rename of
// ..data means the new files are in place. The poll reports the changes,
// notifies the app and logs that the swap happened, not that the current
// files were kept.
func TestPollSwappedButCleanupFailed(t *testing.T) {
	app, posts := notifyApp(t)
	e := newEnv(t, map[string]string{"a": "val-A1"}, &plan.Plan{Secrets: []plan.Secret{{File: "a", ID: "a"}}}, Options{NotifyURL: app})
	// A non-empty directory in the current data directory: removing it
	// after the swap fails, even for root.
	target, err := os.Readlink(filepath.Join(e.dir, "..data"))
	if err != nil {
		t.Fatal(err)
	}
	stuck := filepath.Join(e.dir, target, "stuck")
	if err := os.MkdirAll(stuck, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stuck, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	v2 := e.put(t, "a", "secret-a2")
	rep := e.poll(t)
	if rep.Changed != 1 || len(rep.Changes) != 1 || rep.Changes[0].VersionID != v2 {
		t.Fatalf("report %+v; want the change to %s", rep, v2)
	}
	if e.read(t, "a") != "secret-a2" {
		t.Error("the new file is not in place")
	}
	if n := posts.Load(); n != 1 {
		t.Errorf("%d notifications, want 1: the swap happened", n)
	}
	log := e.log.String()
	if strings.Contains(log, "keeping the current files") {
		t.Error("the log says the current files were kept, but the new ones are in place")
	}
	if !strings.Contains(log, "swapped secrets") || !strings.Contains(log, v2) {
		t.Error("the log does not say the secrets were swapped, with the new version")
	}
	e.noValues(t, "val-A1", "secret-a2")
}

// notifyApp is an app that counts the notifications it gets.
func notifyApp(t *testing.T) (string, *atomic.Int32) {
	t.Helper()
	var posts atomic.Int32
	var mu sync.Mutex
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		io.Copy(io.Discard, r.Body)
		posts.Add(1)
	}))
	t.Cleanup(app.Close)
	return app.URL + "/reload", &posts
}
