//go:build linux

package refresh

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/secretfetch/secretfetch/internal/plan"
	"github.com/secretfetch/secretfetch/internal/render"
)

// TestPollRendersAndSkipsEnvOnly: a rendered file follows a rotation
// rendered again; an env-only secret is never polled and never becomes a
// file; a new value that no longer renders keeps the current file.
func TestPollRendersAndSkipsEnvOnly(t *testing.T) {
	f := newFake(t, map[string]string{"cfg": `{"HOST":"h1","PORT":1}`, "db": "p1"})
	// The first set, as init-fetch writes it: the rendering, and no file
	// for the env-only secret.
	e := f.env(t, &plan.Plan{EnvDir: "/var/run/secretfetch-env", Secrets: []plan.Secret{
		{File: "app.env", ID: "cfg", Format: plan.FormatDotenv},
		{File: "db", ID: "db", Env: "DB", NoFile: true},
	}}, Options{})
	if rep := e.poll(t); rep.Unchanged != 1 || rep.Changed != 0 || len(rep.Failures) != 0 {
		t.Fatalf("first poll: %+v, want one unchanged secret (cfg; db is env only)", rep)
	}
	e.put(t, "db", "p2")
	e.put(t, "cfg", `{"HOST":"h2","PORT":2}`)
	f.fk.ResetRequests()
	if rep := e.poll(t); rep.Changed != 1 || len(rep.Failures) != 0 {
		t.Fatalf("poll after rotation: %+v", rep)
	}
	if got := e.read(t, "app.env"); got != "HOST='h2'\nPORT='2'\n" {
		t.Errorf("app.env after the swap is %d bytes that are not the new rendering", len(got))
	}
	if n := e.calls("", "db"); n != 0 {
		t.Errorf("%d calls for the env-only secret, want none", n)
	}
	if _, err := os.Stat(e.dir + "/db"); !os.IsNotExist(err) {
		t.Errorf("the env-only secret has a file: %v", err)
	}

	// A value that is no longer a JSON object keeps the current file.
	e.put(t, "cfg", "not json h3")
	rep := e.poll(t)
	if len(rep.Failures) != 1 || rep.Failures[0].Code != render.CodeNotObject || rep.Changed != 0 {
		t.Fatalf("poll of a value that does not render: %+v", rep)
	}
	if got := e.read(t, "app.env"); got != "HOST='h2'\nPORT='2'\n" {
		t.Error("a value that does not render replaced the file")
	}
	e.noValues(t, "h2", "h3", "p2")
	if !slices.ContainsFunc(strings.Split(e.log.String(), "\n"), func(l string) bool { return strings.Contains(l, `"code":"NotJSONObject"`) }) {
		t.Error("the failure is not logged with its code")
	}
}
