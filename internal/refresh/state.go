package refresh

import (
	"encoding/json"
	"fmt"

	"github.com/secretfetch/secretfetch/internal/fetch"
)

// stateVersion is the only state format this package reads and writes.
const stateVersion = 1

// State is stored with each set of files (tmpfs.Set.State): for each file,
// the secret and the version it was cut from, and for each env-only secret
// (by its plan name, which has no file) the version the env file holds. It
// tells a refresh sidecar that starts (or restarts) what the files and the
// app hold without fetching them. It holds IDs only, never a value.
type State struct {
	Version int         `json:"version"`
	Files   []FileState `json:"files"`
}

// FileState is one file of a State.
type FileState struct {
	File      string `json:"file"`
	ID        string `json:"id"`
	VersionID string `json:"versionId"`
}

// NewState returns the encoded state of a set fetched as results, for
// tmpfs.Set.State. init-fetch writes it with the first set.
func NewState(results []fetch.Result) []byte {
	st := State{Version: stateVersion, Files: make([]FileState, len(results))}
	for i, r := range results {
		st.Files[i] = FileState{File: r.Secret.File, ID: r.Secret.ID, VersionID: r.VersionID}
	}
	return encodeState(st)
}

func encodeState(st State) []byte {
	b, err := json.Marshal(st)
	if err != nil {
		// Strings and ints only: Marshal cannot fail.
		panic(fmt.Sprintf("encoding the refresh state: %v", err))
	}
	return b
}

// decodeState reads a state into a map by file name.
func decodeState(b []byte) (map[string]FileState, error) {
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("decoding the refresh state: %w", err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("decoding the refresh state: version %d, want %d", st.Version, stateVersion)
	}
	out := make(map[string]FileState, len(st.Files))
	for _, f := range st.Files {
		out[f.File] = f
	}
	return out, nil
}
