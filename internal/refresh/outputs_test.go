//go:build linux

package refresh

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/secretfetch/secretfetch/internal/fetch"
	"github.com/secretfetch/secretfetch/internal/plan"
	"github.com/secretfetch/secretfetch/internal/render"
	"github.com/secretfetch/secretfetch/internal/tmpfs"
)

// TestPollRendersAndSkipsEnvOnly: a rendered file follows a rotation
// rendered again; an env-only secret is never polled and never becomes a
// file; a new value that no longer renders keeps the current file.
func TestPollRendersAndSkipsEnvOnly(t *testing.T) {
	f := newFake(t, map[string]string{"cfg": `{"HOST":"h1","PORT":1}`, "db": "p1"})
	dir := t.TempDir()
	p := &plan.Plan{Version: plan.Version, Dir: dir, EnvDir: "/var/run/secretfetch-env", Region: f.fk.Region(), Secrets: []plan.Secret{
		{File: "app.env", ID: "cfg", Format: plan.FormatDotenv},
		{File: "db", ID: "db", Env: "DB", NoFile: true},
	}}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	d, err := tmpfs.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	// The first set, as init-fetch writes it: the rendering, and no file
	// for the env-only secret.
	results, err := fetch.Fetch(context.Background(), p, fetch.Options{
		Clients: func(r string) (fetch.API, error) { return f.clients(r) }, NewBackOff: fastBackOff})
	if err != nil {
		t.Fatal(err)
	}
	data, _, err := render.FileData(results[0].Secret, results[0].Value, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.WriteSet(tmpfs.Set{Files: []tmpfs.File{{Name: "app.env", Mode: 0o400, Data: data}}, State: NewState(results[:1])}); err != nil {
		t.Fatal(err)
	}
	f.fk.ResetRequests()
	log := &bytes.Buffer{}
	r, err := New(p, d, Options{Interval: time.Minute, Clients: f.clients, NewBackOff: fastBackOff, Log: slog.New(slog.NewJSONHandler(log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{fk: f.fk, dir: dir, d: d, plan: p, log: log, r: r}

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
	if _, err := os.Stat(dir + "/db"); !os.IsNotExist(err) {
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
	if !slices.ContainsFunc(strings.Split(log.String(), "\n"), func(l string) bool { return strings.Contains(l, `"code":"NotJSONObject"`) }) {
		t.Error("the failure is not logged with its code")
	}
}
