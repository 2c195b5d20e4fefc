package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// memoryCgroup is a memory cgroup with a limit, made for the webhook under
// this process's own, so that the webhook is OOM-killed where the
// Deployment's would be. It needs write access to the cgroup filesystem
// (root), cgroup v1 or v2.
type memoryCgroup struct {
	dir string
	v2  bool
}

// newMemoryCgroup makes a cgroup of limit bytes, without swap, under the
// memory cgroup of this process.
func newMemoryCgroup(limit int64) (*memoryCgroup, error) {
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("finding this process's cgroup: %w", err)
	}
	var parent string
	var v2 bool
	for line := range strings.Lines(string(self)) {
		f := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(f) != 3 {
			continue
		}
		if f[1] == "memory" {
			parent, v2 = filepath.Join("/sys/fs/cgroup/memory", f[2]), false
			break
		}
		if f[0] == "0" && f[1] == "" {
			if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
				parent, v2 = filepath.Join("/sys/fs/cgroup", f[2]), true
			}
		}
	}
	if parent == "" {
		return nil, errors.New("no memory cgroup for this process")
	}
	c := &memoryCgroup{dir: filepath.Join(parent, fmt.Sprintf("webhook-abuse-%d", os.Getpid())), v2: v2}
	if err := os.Mkdir(c.dir, 0o755); err != nil {
		return nil, fmt.Errorf("making a memory cgroup: %w", err)
	}
	limits := map[string]string{"memory.limit_in_bytes": strconv.FormatInt(limit, 10)}
	if v2 {
		limits = map[string]string{"memory.max": strconv.FormatInt(limit, 10), "memory.swap.max": "0"}
	}
	for file, v := range limits {
		if err := os.WriteFile(filepath.Join(c.dir, file), []byte(v), 0o644); err != nil {
			_ = c.remove()
			return nil, fmt.Errorf("setting %s: %w", file, err)
		}
	}
	return c, nil
}

// add moves the process pid into the cgroup.
func (c *memoryCgroup) add(pid int) error {
	if err := os.WriteFile(filepath.Join(c.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return fmt.Errorf("moving %d into %s: %w", pid, c.dir, err)
	}
	return nil
}

// peak is the most memory the cgroup used, page cache included, in bytes.
func (c *memoryCgroup) peak() int64 {
	file := "memory.max_usage_in_bytes"
	if c.v2 {
		file = "memory.peak"
	}
	b, err := os.ReadFile(filepath.Join(c.dir, file))
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}

// oomKills is how many processes of the cgroup the kernel killed for
// memory.
func (c *memoryCgroup) oomKills() int {
	file := "memory.oom_control"
	if c.v2 {
		file = "memory.events"
	}
	f, err := os.Open(filepath.Join(c.dir, file))
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "oom_kill "); ok {
			n, _ := strconv.Atoi(rest)
			return n
		}
	}
	return 0
}

// remove removes the cgroup, once its processes are gone.
func (c *memoryCgroup) remove() error { return os.Remove(c.dir) }
