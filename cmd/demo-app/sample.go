package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// sampling is what `demo-app --sample DURATION` reports: every distinct set
// of file contents it read, by SHA-256, never a value. Each sample resolves
// ..data once and reads every file through that resolution, as an app that
// wants one consistent set does; the e2e suite checks that no sample mixes
// two versions while the refresh sidecar swaps.
type sampling struct {
	Samples int `json:"samples"`
	// Errors counts samples that failed, such as a read of a data directory
	// removed after a swap just after ..data was resolved; the app would
	// resolve again.
	Errors int          `json:"errors"`
	Sets   []sampledSet `json:"sets"`
}

type sampledSet struct {
	SHA256 map[string]string `json:"sha256"`
	Count  int               `json:"count"`
}

// sample reads the files of dir, through ..data, again and again for d.
func sample(dir string, d time.Duration, w io.Writer) error {
	var out sampling
	index := map[string]int{}
	for end := time.Now().Add(d); time.Now().Before(end); {
		out.Samples++
		set, err := readSet(dir)
		if err != nil {
			out.Errors++
			continue
		}
		keys := make([]string, 0, len(set))
		for name, sum := range set {
			keys = append(keys, name+"="+sum)
		}
		slices.Sort(keys)
		k := strings.Join(keys, ",")
		i, ok := index[k]
		if !ok {
			i = len(out.Sets)
			index[k] = i
			out.Sets = append(out.Sets, sampledSet{SHA256: set})
		}
		out.Sets[i].Count++
	}
	return json.NewEncoder(w).Encode(out)
}

// readSet resolves ..data once and hashes every file in that data directory.
func readSet(dir string) (map[string]string, error) {
	target, err := os.Readlink(filepath.Join(dir, dataLink))
	if err != nil {
		return nil, err
	}
	if strings.Contains(target, "/") {
		return nil, fmt.Errorf("%s points outside the directory", dataLink)
	}
	data := filepath.Join(dir, target)
	entries, err := os.ReadDir(data)
	if err != nil {
		return nil, err
	}
	set := map[string]string{}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(data, e.Name()))
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(b)
		clear(b)
		set[e.Name()] = hex.EncodeToString(sum[:])
	}
	return set, nil
}
