// Package restart decides when the refresh sidecar restarts its pod for a
// rotation (secretfetch.io/refresh-restart), and remembers that it did.
//
//	a new version that passed every check of the init container (package
//	refresh) -> Scheduler.Observe: a restart pending since then, written to
//	the marker -> Scheduler.Due: the pod's offset within the window after
//	that, and never sooner than the spacing after the last restart ->
//	Scheduler.Restart: the marker records the restart and its cause, then an
//	*Error, which init-fetch exits with as plan.RestartExitCode
//
// The replicas of one workload spread their restarts over the window with
// nothing but their own names: Offset hashes "<namespace>/<name>" to a wait
// that is the same for a pod every time and uniform across pods. No API
// call, no RBAC, no coordination.
//
// The marker is a small JSON file in the volume's root, not in the files'
// layout, which the init container writes anew on the way back up. It holds
// the time of the last restart and what caused it, and the restart that is
// pending, so that a secret that flaps restarts the pod at most once per
// spacing, and a sidecar that crashes while it waits does not forget to
// restart. It holds secret IDs, file and variable names and version IDs,
// never a value.
package restart

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/secretfetch/secretfetch/internal/clip"
	"github.com/secretfetch/secretfetch/internal/plan"
	"github.com/secretfetch/secretfetch/internal/tmpfs"
)

const (
	// MarkerName is the marker's name in the volume's root. It starts with
	// '.', which no file name of a plan (nor its subdir) can, so it never
	// meets the files even where the layout is the root itself.
	MarkerName = ".restart-state"
	// MaxMarker bounds the marker, as written and as read. The volume holds
	// at most two at once (the new one is written, then renamed over the
	// old), so restart on change needs 2 x MaxMarker on it.
	MaxMarker = 16 << 10
	// markerMode: the marker holds no secret, and only the sidecar reads it.
	markerMode    = 0o400
	markerVersion = 1
)

// Rotation is one secret (the files and variables cut from one request)
// seen at a new version that passed every check the init container makes.
type Rotation struct {
	ID    string   `json:"id"`
	Files []string `json:"files,omitempty"`
	Envs  []string `json:"envs,omitempty"`
	// PreviousVersionID is the version the app started with, VersionID
	// the one it restarts for.
	PreviousVersionID string `json:"previousVersionId"`
	VersionID         string `json:"versionId"`
}

// key tells the rotations of one request apart.
func (r Rotation) key() string {
	return r.ID + "\x00" + strings.Join(r.Files, "/") + "\x00" + strings.Join(r.Envs, "/")
}

// Marker is what the marker file holds.
type Marker struct {
	Version int `json:"version"`
	// LastRestart is when the sidecar last exited to restart the pod for a
	// rotation; zero if it never did.
	LastRestart time.Time `json:"lastRestart,omitzero"`
	// Cause is what that restart was for; CauseOmitted counts rotations
	// left out to keep the marker under MaxMarker.
	Cause        []Rotation `json:"cause,omitempty"`
	CauseOmitted int        `json:"causeOmitted,omitempty"`
	// Pending is the restart waiting for its turn, if any.
	Pending *Pending `json:"pending,omitempty"`
}

// Pending is a restart waiting for its turn.
type Pending struct {
	// Since is when the first of its rotations was seen.
	Since     time.Time  `json:"since"`
	Rotations []Rotation `json:"rotations"`
	// Omitted counts rotations left out to keep the marker under MaxMarker;
	// the restart happens all the same.
	Omitted int `json:"omitted,omitempty"`
}

// Offset is the pod's wait within the window, from the moment it sees a new
// version to its restart: FNV-64a of "<namespace>/<name>", mixed by
// murmur3's 64-bit finaliser (so that names that differ only in their last
// characters, such as web-0 and web-1, land far apart), modulo the window.
// It is the same for a pod every time and uniform over [0, window) across
// pods, so that the replicas of a workload, which all see a new version
// within one refresh interval, restart spread over the window. It is 0 for a
// window of 0 or less.
func Offset(namespace, name string, window time.Duration) time.Duration {
	if window <= 0 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(namespace + "/" + name))
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return time.Duration(x % uint64(window))
}

// Options configure a Scheduler.
type Options struct {
	// Window spreads the restarts of a workload's pods (see Offset); it
	// must pass plan.ValidateRestartWindow.
	Window time.Duration
	// Spacing is the least time between two restarts of the pod; it must
	// pass plan.ValidateRestartSpacing.
	Spacing time.Duration
	// Namespace and Name are the pod's, from the downward API. Without them
	// the offset is 0.
	Namespace, Name string
	// Log receives the warnings about the marker; nil discards.
	Log *slog.Logger
}

// Scheduler holds one pod's restart on change. It is not safe for
// concurrent use; the refresh loop calls it between polls.
type Scheduler struct {
	root    *tmpfs.Dir
	spacing time.Duration
	window  time.Duration
	offset  time.Duration
	log     *slog.Logger
	m       Marker
}

// Open returns the Scheduler of the pod whose volume's root is root, with
// what the marker there remembers. A marker that is missing starts afresh;
// one that cannot be read is logged and starts afresh too: it is replaced
// before the next restart, which cannot happen without writing it. Times in
// the marker later than now (a clock set back) count as now.
func Open(root *tmpfs.Dir, o Options, now time.Time) (*Scheduler, error) {
	if err := plan.ValidateRestartWindow(o.Window); err != nil {
		return nil, fmt.Errorf("the restart window: %w", err)
	}
	if err := plan.ValidateRestartSpacing(o.Spacing); err != nil {
		return nil, fmt.Errorf("the restart spacing: %w", err)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	s := &Scheduler{root: root, spacing: o.Spacing, window: o.Window, log: o.Log, m: Marker{Version: markerVersion}}
	if o.Namespace != "" && o.Name != "" {
		s.offset = Offset(o.Namespace, o.Name, o.Window)
	} else if o.Window > 0 {
		o.Log.Warn("the pod's namespace and name are not known; restarting at the start of the window, not at this pod's own offset",
			"missing", plan.EnvPodNamespace+", "+plan.EnvPodName)
	}
	b, err := root.ReadFile(MarkerName, MaxMarker)
	if err == nil {
		var m Marker
		if m, err = DecodeMarker(b); err == nil {
			s.m = m
		}
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		o.Log.Warn("cannot read the restart marker; starting without it", "dir", root.Path(), "file", MarkerName, "error", clip.String(err.Error(), 1024))
	}
	if s.m.LastRestart.After(now) {
		o.Log.Warn("the restart marker's last restart is later than now; counting it as now", "lastRestart", s.m.LastRestart)
		s.m.LastRestart = now
	}
	if p := s.m.Pending; p != nil && p.Since.After(now) {
		p.Since = now
	}
	return s, nil
}

// Offset is the pod's offset within the window.
func (s *Scheduler) Offset() time.Duration { return s.offset }

// Window is the window the offset lies in.
func (s *Scheduler) Window() time.Duration { return s.window }

// Spacing is the least time between two restarts.
func (s *Scheduler) Spacing() time.Duration { return s.spacing }

// Marker is what the Scheduler remembers.
func (s *Scheduler) Marker() Marker { return s.m }

// Observe adds rotations seen at now to the pending restart, starting one if
// none is, and writes the marker. A rotation of a request already pending
// keeps the version it came from and moves to the new one. The pending
// restart stands even when the marker cannot be written; the error says so.
func (s *Scheduler) Observe(now time.Time, rotations []Rotation) error {
	if len(rotations) == 0 {
		return nil
	}
	p := s.m.Pending
	if p == nil {
		p = &Pending{Since: now}
		s.m.Pending = p
	}
	for _, r := range rotations {
		i := slices.IndexFunc(p.Rotations, func(q Rotation) bool { return q.key() == r.key() })
		if i < 0 {
			p.Rotations = append(p.Rotations, r)
			continue
		}
		p.Rotations[i].VersionID = r.VersionID
	}
	return s.save()
}

// Due returns when the pending restart is due, and false when none is
// pending: the pod's offset after the first rotation was seen, or the
// spacing after the last restart, whichever is later.
func (s *Scheduler) Due() (time.Time, bool) {
	p := s.m.Pending
	if p == nil {
		return time.Time{}, false
	}
	due := p.Since.Add(s.offset)
	if !s.m.LastRestart.IsZero() {
		if next := s.m.LastRestart.Add(s.spacing); next.After(due) {
			due = next
		}
	}
	return due, true
}

// Restart records a restart of the pod at now in the marker, caused by the
// pending rotations, and returns the *Error to exit with. It fails when no
// restart is pending, and when the marker cannot be written: without it, the
// next sidecar could not keep the spacing, so the caller must not restart.
func (s *Scheduler) Restart(now time.Time) (*Error, error) {
	p := s.m.Pending
	if p == nil {
		return nil, errors.New("no restart is pending")
	}
	prev := s.m
	s.m = Marker{Version: markerVersion, LastRestart: now, Cause: p.Rotations, CauseOmitted: p.Omitted}
	if err := s.save(); err != nil {
		s.m = prev
		return nil, err
	}
	return &Error{Rotations: p.Rotations, Omitted: p.Omitted, Since: p.Since, Offset: s.offset, Waited: now.Sub(p.Since)}, nil
}

// save writes the marker into the root, atomically.
func (s *Scheduler) save() error {
	b, m, err := EncodeMarker(s.m)
	if err != nil {
		return err
	}
	s.m = m
	if err := s.root.WriteAll([]tmpfs.File{{Name: MarkerName, Mode: markerMode, Data: b}}); err != nil {
		return fmt.Errorf("writing the restart marker: %w", err)
	}
	return nil
}

// EncodeMarker returns the JSON of m, at most MaxMarker bytes, and m as
// encoded: rotations are left out, the last ones first and those of the
// past restart before the pending ones, and counted, until it fits.
func EncodeMarker(m Marker) ([]byte, Marker, error) {
	m.Version = markerVersion
	m.Cause = slices.Clone(m.Cause)
	if m.Pending != nil {
		p := *m.Pending
		p.Rotations = slices.Clone(p.Rotations)
		m.Pending = &p
	}
	for {
		b, err := json.Marshal(m)
		if err != nil {
			return nil, m, fmt.Errorf("encoding the restart marker: %w", err)
		}
		switch {
		case len(b) <= MaxMarker:
			return b, m, nil
		case len(m.Cause) > 0:
			m.Cause = m.Cause[:len(m.Cause)-1]
			m.CauseOmitted++
		case m.Pending != nil && len(m.Pending.Rotations) > 0:
			m.Pending.Rotations = m.Pending.Rotations[:len(m.Pending.Rotations)-1]
			m.Pending.Omitted++
		default:
			return nil, m, fmt.Errorf("encoding the restart marker: %d bytes without any rotation, more than %d", len(b), MaxMarker)
		}
	}
}

// DecodeMarker reads a marker's JSON.
func DecodeMarker(b []byte) (Marker, error) {
	if len(b) > MaxMarker {
		return Marker{}, fmt.Errorf("decoding the restart marker: %d bytes, more than %d", len(b), MaxMarker)
	}
	var m Marker
	if err := json.Unmarshal(b, &m); err != nil {
		return Marker{}, fmt.Errorf("decoding the restart marker: %w", err)
	}
	if m.Version != markerVersion {
		return Marker{}, fmt.Errorf("decoding the restart marker: version %d, want %d", m.Version, markerVersion)
	}
	return m, nil
}

// Error ends the refresh sidecar's run to restart the pod; init-fetch exits
// with plan.RestartExitCode for it, and for nothing else. It holds IDs,
// names and version IDs, never a value.
type Error struct {
	Rotations []Rotation
	// Omitted counts rotations left out of the marker, and so of this list.
	Omitted int
	// Since is when the first rotation was seen.
	Since time.Time
	// Offset is the pod's offset within the window; Waited is the time
	// from Since to the restart: the offset, or longer when the spacing or
	// a failing secret held the restart back.
	Offset, Waited time.Duration
}

// maxErrorIDs bounds the IDs that Error's text lists.
const maxErrorIDs = 8

func (e *Error) Error() string {
	return "restarting the pod for a rotation of " + e.IDs(maxErrorIDs)
}

// IDs lists the rotated secrets' IDs, each once, at most n of them and then
// how many more.
func (e *Error) IDs(n int) string {
	var ids []string
	for _, r := range e.Rotations {
		if !slices.Contains(ids, r.ID) {
			ids = append(ids, r.ID)
		}
	}
	more := e.Omitted
	if len(ids) > n {
		more += len(ids) - n
		ids = ids[:n]
	}
	s := strings.Join(ids, ", ")
	if more > 0 {
		s += fmt.Sprintf(" and %d more", more)
	}
	return s
}
