//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	magiconair "github.com/magiconair/properties"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// envListing is the demo app's listing with the environment variables it
// was asked about (`demo-app --once --json --env NAME ...`).
type envListing struct {
	listing
	Env []struct {
		Name  string `json:"name"`
		Set   bool   `json:"set"`
		Value []byte `json:"value"`
	} `json:"env"`
}

// readEnv asks the app container for its files and the named variables,
// through exec: the values travel only over the exec stream. The app
// reads its own environment, which is what `kubectl exec ... env` would show
// in an image that has env.
func readEnv(t testing.TB, ns, pod string, names ...string) envListing {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := []string{"-n", ns, "exec", pod, "-c", "app", "--", "/demo-app", "--once", "--json", "--dir", mountPath}
	for _, n := range names {
		args = append(args, "--env", n)
	}
	out, err := kubectl(ctx, nil, args...)
	requireNoErr(t, err, "reading the environment of "+pod)
	var l envListing
	requireNoErr(t, json.Unmarshal([]byte(out), &l), "decoding the demo app's listing")
	return l
}

func (l envListing) env(name string) ([]byte, bool) {
	for _, e := range l.Env {
		if e.Name == name {
			return e.Value, e.Set
		}
	}
	return nil, false
}

// TestEnvFiles: secrets as environment variables through EnvFiles, and
// rendered files, in a restricted namespace. The app sees DB_PASSWORD (env
// only, multi-line) and API_KEY (env and file); a dotenv rendering sourced by
// a shell and a properties rendering read back key by key give the JSON
// secret's keys; and no value reaches the pod object, the events, the logs
// or etcd.
func TestEnvFiles(t *testing.T) {
	ns := newNamespace(t, "envfiles") // enforces the restricted standard
	dbPassword := canary(t, "dbpass") + "\nsecond line\twith a tab and a # hash"
	apiKey := canary(t, "apikey")
	cfgToken := canary(t, "cfgtoken") + ` $HOME "quoted" \ back`
	dbJSON, _ := json.Marshal(map[string]string{"user": "app", "password": dbPassword})
	cfgJSON, _ := json.Marshal(map[string]any{"HOST": "db.local", "PORT": 5432, "TOKEN": cfgToken})
	putSecret(t, ns+"/db", string(dbJSON))
	putSecret(t, ns+"/api", apiKey)
	putSecret(t, ns+"/config", string(cfgJSON))

	ann := annotations(map[string]string{"db": ns + "/db", "api-key": ns + "/api", "app.env": ns + "/config", "app.properties": ns + "/config"},
		map[string]string{
			"secretfetch.io/key-db": "password", "secretfetch.io/env-db": "DB_PASSWORD", "secretfetch.io/file-db": "false",
			"secretfetch.io/env-api-key":           "API_KEY",
			"secretfetch.io/format-app.env":        "dotenv",
			"secretfetch.io/format-app.properties": "properties",
		})
	rollOut(t, ns, deployment("app", 1, ann, podSpec(true, e2eRoleARN)))
	pods := runningPods(t, ns, "app")
	if len(pods) != 1 {
		t.Fatalf("got %d running pods, want 1", len(pods))
	}
	pod := pods[0]
	l := readEnv(t, ns, pod.Name, "DB_PASSWORD", "API_KEY")

	t.Run("the app sees the variables", func(t *testing.T) {
		for name, want := range map[string]string{"DB_PASSWORD": dbPassword, "API_KEY": apiKey} {
			got, set := l.env(name)
			if !set {
				t.Errorf("%s is not set in the app container", name)
			} else if string(got) != want {
				// Lengths only: a test failure must not print a secret.
				t.Errorf("%s differs (%d bytes, want %d; a multi-line value must arrive intact)", name, len(got), len(want))
			}
		}
	})

	t.Run("env only means no file", func(t *testing.T) {
		if _, ok := l.file("db"); ok {
			t.Error("file db exists although secretfetch.io/file-db is false")
		}
		if f, ok := l.file("api-key"); !ok || string(f.Value) != apiKey {
			t.Errorf("file api-key is missing or differs (env and file)")
		}
		for _, f := range l.Files {
			if strings.Contains(f.Name, "env") && f.Name != "app.env" {
				t.Errorf("the app's mount shows %s; the env file must not be visible to the app", f.Name)
			}
		}
	})

	t.Run("dotenv sourced by a shell", func(t *testing.T) {
		f, ok := l.file("app.env")
		if !ok {
			t.Fatal("file app.env is missing")
		}
		file := filepath.Join(t.TempDir(), "app.env")
		requireNoErr(t, os.WriteFile(file, f.Value, 0o600), "saving app.env")
		cmd := exec.Command("sh", "-c", `set -a; . "$1"; exec env -0`, "sh", file)
		cmd.Env = []string{}
		out, err := cmd.Output()
		requireNoErr(t, err, "sourcing app.env in sh")
		got := map[string]string{}
		for _, kv := range strings.Split(string(out), "\x00") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				got[k] = v
			}
		}
		for k, want := range map[string]string{"HOST": "db.local", "PORT": "5432", "TOKEN": cfgToken} {
			if got[k] != want {
				t.Errorf("%s from the shell differs (%d bytes, want %d)", k, len(got[k]), len(want))
			}
		}
	})

	t.Run("properties read back key by key", func(t *testing.T) {
		f, ok := l.file("app.properties")
		if !ok {
			t.Fatal("file app.properties is missing")
		}
		loader := &magiconair.Loader{Encoding: magiconair.ISO_8859_1, DisableExpansion: true}
		p, err := loader.LoadBytes(f.Value)
		requireNoErr(t, err, "loading app.properties")
		for k, want := range map[string]string{"HOST": "db.local", "PORT": "5432", "TOKEN": cfgToken} {
			if got, _ := p.Get(k); got != want {
				t.Errorf("%s from the properties differs (%d bytes, want %d)", k, len(got), len(want))
			}
		}
	})

	t.Run("the pod holds references only", func(t *testing.T) {
		app := pod.Spec.Containers[0]
		for _, name := range []string{"DB_PASSWORD", "API_KEY"} {
			found := false
			for _, e := range app.Env {
				if e.Name == name {
					found = e.Value == "" && e.ValueFrom != nil && e.ValueFrom.FileKeyRef != nil &&
						e.ValueFrom.FileKeyRef.VolumeName == "secretfetch-env" && e.ValueFrom.FileKeyRef.Key == name
				}
			}
			if !found {
				t.Errorf("the app container has no fileKeyRef entry for %s", name)
			}
		}
		for _, c := range append(pod.Spec.Containers, pod.Spec.InitContainers[1:]...) {
			for _, m := range c.VolumeMounts {
				if m.Name == "secretfetch-env" {
					t.Errorf("container %s mounts the env file's volume", c.Name)
				}
			}
		}
		canaries := [][]byte{[]byte(dbPassword[:30]), []byte(apiKey), []byte(cfgToken[:30])}
		places := map[string][]byte{"etcd": etcdDump(t)}
		ctx := context.Background()
		for _, args := range [][]string{
			{"-n", ns, "get", "pods,replicasets,deployments,events", "-o", "json"},
			{"-n", ns, "logs", "-l", "app=app", "--all-containers", "--prefix", "--tail=-1"},
		} {
			out, err := kubectl(ctx, nil, args...)
			requireNoErr(t, err, "reading "+strings.Join(args, " "))
			places["kubectl "+strings.Join(args, " ")] = []byte(out)
		}
		for where, data := range places {
			if !bytes.Contains(data, []byte(ns+"/db")) {
				t.Errorf("%s does not mention %s/db; the search there proves nothing", where, ns)
			}
			for i, c := range canaries {
				if bytes.Contains(data, c) {
					t.Errorf("secret value #%d appears in %s", i, where)
				}
			}
		}
	})
}

// TestEnvValueNotCarried: a value that the kubelet's env file parser cannot
// carry (a single quote) keeps the pod from running, and the termination
// message names the secret and the variable, never the value.
func TestEnvValueNotCarried(t *testing.T) {
	ns := newNamespace(t, "envquote")
	id := ns + "/quoted"
	value := "it's-" + canary(t, "quoted")
	putSecret(t, id, value)
	ctx := context.Background()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "quoted", Annotations: annotations(map[string]string{"quoted": id},
			map[string]string{"secretfetch.io/env-quoted": "QUOTED"})},
		Spec: podSpec(true, e2eRoleARN),
	}
	_, err := env.cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	requireNoErr(t, err, "creating the pod")
	term := waitInitFailed(t, ns, "quoted")
	for _, want := range []string{id, "env QUOTED", "UnsupportedEnvValue"} {
		if !strings.Contains(term.Message, want) {
			t.Errorf("termination message %q does not name %s", term.Message, want)
		}
	}
	if strings.Contains(term.Message, value[5:]) {
		t.Error("the termination message contains the secret value")
	}
	p, err := env.cs.CoreV1().Pods(ns).Get(ctx, "quoted", metav1.GetOptions{})
	requireNoErr(t, err, "reading the pod")
	for _, s := range p.Status.ContainerStatuses {
		if s.State.Running != nil {
			t.Errorf("container %s is running although its variable could not be delivered", s.Name)
		}
	}
}
