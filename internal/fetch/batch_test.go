package fetch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/secretfetch/secretfetch/internal/plan"
	"github.com/secretfetch/secretfetch/internal/smfake"
)

const opBatch = "BatchGetSecretValue"

// batchPlan is n secrets s0..s(n-1) in batch mode.
func batchPlan(n int) *plan.Plan {
	p := &plan.Plan{Version: 1, Dir: "/d", Region: smfake.DefaultRegion, Batch: true}
	for i := range n {
		p.Secrets = append(p.Secrets, plan.Secret{File: fmt.Sprintf("f%d", i), ID: fmt.Sprintf("s%d", i)})
	}
	return p
}

func seedN(t *testing.T, fk *smfake.Server, n int) {
	t.Helper()
	for i := range n {
		create(t, fk, fmt.Sprintf("s%d", i), smfake.Value{String: fmt.Sprintf(`{"v":"value-%d"}`, i)})
	}
}

func TestBatchTwentyAPerCall(t *testing.T) {
	fk, o := fake(t)
	seedN(t, fk, 25)
	o.Calls = &Calls{}
	res, err := Fetch(context.Background(), batchPlan(25), o)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if want := fmt.Sprintf(`{"v":"value-%d"}`, i); string(r.Value) != want || !r.Batched {
			t.Errorf("file %s: %s (batched %v), want its own value from a batch", r.Secret.File, digest(r.Value), r.Batched)
		}
	}
	if b, g := fk.Count(opBatch, ""), fk.Count(opGet, ""); b != 2 || g != 0 {
		t.Errorf("25 secrets: %d BatchGetSecretValue and %d GetSecretValue calls, want 2 and 0", b, g)
	}
	if n := o.Calls.Matching(func(c CallCount) bool { return c.API == opBatch && c.Result == ResultOK }); n != 2 {
		t.Errorf("counted %d successful batch calls, want 2: %+v", n, o.Calls.Counts())
	}
}

// Only the current version can be batched; keys, patterns and ARNs work
// as with GetSecretValue, and files cut from one secret share its entry.
func TestBatchMixedPlan(t *testing.T) {
	fk, o := fake(t)
	arn, _ := create(t, fk, "app/db", smfake.Value{String: `{"user":"u","password":"p"}`})
	create(t, fk, "app/bin", smfake.Value{Binary: []byte{0, 1, 2}})
	_, prevVersion := create(t, fk, "app/old", smfake.Value{String: "old"})
	if _, err := fk.PutSecretValue("app/old", smfake.Value{String: "new"}); err != nil {
		t.Fatal(err)
	}
	p := &plan.Plan{Version: 1, Dir: "/d", Region: smfake.DefaultRegion, Batch: true, Secrets: []plan.Secret{
		{File: "user", ID: arn, Key: "user"},
		{File: "password", ID: arn, Key: "password", Pattern: "p"},
		{File: "partial", ID: strings.TrimSuffix(arn, arn[len(arn)-7:]), Key: "user"},
		{File: "bin", ID: "app/bin"},
		{File: "prev", ID: "app/old", VersionStage: "AWSPREVIOUS"},
	}}
	res, err := Fetch(context.Background(), p, o)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"u", "p", "u", "\x00\x01\x02", "old"}
	for i, r := range res {
		if string(r.Value) != want[i] {
			t.Errorf("file %s: %s, want %s", r.Secret.File, digest(r.Value), digest([]byte(want[i])))
		}
	}
	if res[4].Batched || res[4].VersionID != prevVersion {
		t.Errorf("AWSPREVIOUS: batched %v at %s, want GetSecretValue at %s", res[4].Batched, res[4].VersionID, prevVersion)
	}
	if b, g := fk.Count(opBatch, ""), fk.Count(opGet, ""); b != 1 || g != 1 {
		t.Errorf("%d BatchGetSecretValue and %d GetSecretValue calls, want 1 and 1 (AWSPREVIOUS)", b, g)
	}
}

// A secret the batch reports missing or denied fails closed, named; one it
// reports failed for a reason that may pass is asked again alone.
func TestBatchItemErrors(t *testing.T) {
	fk, o := fake(t)
	seedN(t, fk, 5)
	var mu sync.Mutex
	var fallbacks []BatchFallback
	o.OnBatchFallback = func(b BatchFallback) { mu.Lock(); fallbacks = append(fallbacks, b); mu.Unlock() }
	fk.InjectFault(smfake.Fault{Operation: opBatch, SecretID: "s1", Code: "InternalServiceError", Count: 1})
	res, err := Fetch(context.Background(), batchPlan(5), o)
	if err != nil {
		t.Fatalf("one item failed with a 5xx: %v, want it fetched again alone", err)
	}
	if res[1].Batched || string(res[1].Value) != `{"v":"value-1"}` {
		t.Errorf("s1: %s, batched %v; want its value from GetSecretValue", digest(res[1].Value), res[1].Batched)
	}
	if len(fallbacks) != 1 || fallbacks[0].IDs[0] != "s1" || fallbacks[0].Code != "InternalServiceError" {
		t.Errorf("fallbacks: %+v, want s1 for InternalServiceError", fallbacks)
	}
	if g := fk.Count(opGet, ""); g != 1 {
		t.Errorf("%d GetSecretValue calls, want 1 (s1)", g)
	}

	fk.ResetRequests()
	p := batchPlan(5)
	p.Secrets[3].ID = "missing"
	_, err = Fetch(context.Background(), p, o)
	var fe *Error
	if !errors.As(err, &fe) || len(fe.Failures) != 1 || fe.Failures[0].ID != "missing" || fe.Failures[0].Code != "ResourceNotFoundException" {
		t.Fatalf("a missing secret in a batch: %v, want one failure naming it with ResourceNotFoundException", err)
	}
	if g := fk.Count(opGet, ""); g != 0 {
		t.Errorf("a missing secret was asked again alone (%d GetSecretValue calls), want it failed closed", g)
	}

	fk.ResetRequests()
	fk.InjectFault(smfake.Fault{Operation: opBatch, SecretID: "s2", Code: "AccessDeniedException"})
	_, err = Fetch(context.Background(), batchPlan(5), o)
	if !errors.As(err, &fe) || len(fe.Failures) != 1 || fe.Failures[0].ID != "s2" || fe.Failures[0].Code != "AccessDeniedException" {
		t.Fatalf("a denied secret in a batch: %v, want one failure naming it with AccessDeniedException", err)
	}
}

// A role without secretsmanager:BatchGetSecretValue still gets its
// secrets, one call each.
func TestBatchCallDeniedFallsBack(t *testing.T) {
	fk, o := fake(t)
	seedN(t, fk, 3)
	fk.InjectFault(smfake.Fault{Operation: opBatch, Code: "AccessDeniedException"})
	res, err := Fetch(context.Background(), batchPlan(3), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 || res[0].Batched {
		t.Errorf("results %d, batched %v: want 3 from GetSecretValue", len(res), res[0].Batched)
	}
	if b, g := fk.Count(opBatch, ""), fk.Count(opGet, ""); b != 1 || g != 3 {
		t.Errorf("%d BatchGetSecretValue and %d GetSecretValue calls, want 1 and 3", b, g)
	}
}

// BatchGetSecretValue fails over as GetSecretValue does, with the ARNs
// rewritten.
func TestBatchFailover(t *testing.T) {
	r := twoRegions(t)
	arn, _ := r.both(t, "app/db")
	r.both(t, "app/api")
	r.primary.InjectFault(smfake.Fault{Operation: opBatch, Code: "ServiceUnavailable", Status: 503})
	p := failoverPlan(plan.Secret{File: "db", ID: arn}, plan.Secret{File: "api", ID: "app/api"})
	p.Batch = true
	res, err := Fetch(context.Background(), p, r.opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range res {
		if res.Region != replicaRegion || !res.Batched || string(res.Value) != "from-"+replicaRegion {
			t.Errorf("file %s: %s from %q (batched %v), want the replica's from a batch", res.Secret.File, digest(res.Value), res.Region, res.Batched)
		}
	}
	if b := r.replica.Count(opBatch, ""); b != 1 {
		t.Errorf("the replica got %d batch calls, want 1", b)
	}
}

func TestMatchesID(t *testing.T) {
	const arn = "arn:aws:secretsmanager:us-east-1:111122223333:secret:app/db-AbCdEf"
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{"app/db", true},
		{arn, true},
		{"arn:aws:secretsmanager:us-east-1:111122223333:secret:app/db", true},
		{"arn:aws:secretsmanager:us-east-1:111122223333:secret:app/d", false},
		{"app/db-AbCdEf", false},
		{"arn:aws:secretsmanager:us-east-1:111122223333:secret:app/db-AbCdE", false},
	} {
		if got := MatchesID(tc.id, arn, "app/db"); got != tc.want {
			t.Errorf("MatchesID(%s) = %v, want %v", tc.id, got, tc.want)
		}
	}
}
