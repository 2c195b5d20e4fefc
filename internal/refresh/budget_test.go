//go:build linux

package refresh

import (
	"fmt"
	"testing"

	"github.com/secretfetch/secretfetch/internal/plan"
)

// TestCallsPerPoll measures what the README's budget is computed from: a
// poll makes one DescribeSecret per secret (files cut from one secret share
// it) and no GetSecretValue while nothing changes, and one GetSecretValue per
// secret that has a new version.
func TestCallsPerPoll(t *testing.T) {
	const secrets, polls = 10, 30
	values := map[string]string{}
	var p plan.Plan
	for i := range secrets {
		id := fmt.Sprintf("s%d", i)
		values[id] = `{"user":"u","password":"p"}`
		p.Secrets = append(p.Secrets, plan.Secret{File: id, ID: id})
	}
	// Two more files cut from s0: still one request for s0.
	p.Secrets = append(p.Secrets, plan.Secret{File: "s0-user", ID: "s0", Key: "user"}, plan.Secret{File: "s0-password", ID: "s0", Key: "password"})
	e := newEnv(t, values, &p, Options{})
	for range polls {
		e.poll(t)
	}
	if d, g := e.calls(opDescribe, ""), e.calls(opGet, ""); d != secrets*polls || g != 0 {
		t.Fatalf("%d polls of %d secrets, nothing new: %d DescribeSecret and %d GetSecretValue, want %d and 0", polls, secrets, d, g, secrets*polls)
	}
	e.fk.ResetRequests()
	e.put(t, "s0", `{"user":"u","password":"p2"}`)
	e.put(t, "s1", `{"user":"u","password":"p2"}`)
	e.poll(t)
	if d, g := e.calls(opDescribe, ""), e.calls(opGet, ""); d != secrets || g != 2 {
		t.Errorf("a poll with two new versions: %d DescribeSecret and %d GetSecretValue, want %d and 2", d, g, secrets)
	}
}
