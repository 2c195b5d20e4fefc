package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// envFlags collects repeated --env NAME flags: the environment variables to
// list next to the files (secretfetch.io/env-<name> delivers them).
type envFlags []string

func (e *envFlags) String() string { return strings.Join(*e, ",") }

func (e *envFlags) Set(v string) error {
	*e = append(*e, v)
	return nil
}

// envVar is one listed environment variable, described like a file: its
// size and a SHA-256 prefix in the log, its value only when values are
// shown.
type envVar struct {
	Name   string `json:"name"`
	Set    bool   `json:"set"`
	Size   int    `json:"size"`
	SHA256 string `json:"sha256,omitempty"`
	Value  []byte `json:"value,omitempty"`
}

func listEnv(names []string, lookup func(string) (string, bool), showValues bool) []envVar {
	var out []envVar
	for _, n := range names {
		v, ok := lookup(n)
		e := envVar{Name: n, Set: ok, Size: len(v)}
		if ok {
			sum := sha256.Sum256([]byte(v))
			e.SHA256 = hex.EncodeToString(sum[:])
			if showValues {
				e.Value = []byte(v)
			}
		}
		out = append(out, e)
	}
	return out
}

// processEnv returns a lookup in the environment of another process, read
// from /proc/<pid>/environ: what that process started with, which is what
// an app that reads its variables once has. The e2e suite reads the app's
// own (pid 1 in its container) through `kubectl exec`, whose new process
// would only show what the kubelet gives a process started now.
func processEnv(procRoot string, pid int) (func(string) (string, bool), error) {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "environ"))
	if err != nil {
		return nil, fmt.Errorf("reading the environment of process %d: %w", pid, err)
	}
	env := map[string]string{}
	for _, kv := range strings.Split(string(b), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return func(name string) (string, bool) { v, ok := env[name]; return v, ok }, nil
}
