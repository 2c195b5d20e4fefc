package mutate

import (
	"time"

	"github.com/secretfetch/secretfetch/internal/grammar"
)

// DefaultMinRefreshInterval is the shortest refresh interval a pod may ask
// for unless --min-refresh-interval says otherwise (grammar's default).
const DefaultMinRefreshInterval = grammar.DefaultMinRefreshInterval

// Refresh is a pod's request to keep its files current.
type Refresh = grammar.Refresh

// ParseOption changes how Parse checks a pod against the webhook's settings.
type ParseOption func(*grammar.Settings)

// WithMinRefreshInterval sets the shortest refresh interval allowed
// (--min-refresh-interval); 0 means DefaultMinRefreshInterval.
func WithMinRefreshInterval(d time.Duration) ParseOption {
	return func(s *grammar.Settings) { s.MinRefreshInterval = d }
}

func newParseSettings(opts []ParseOption) grammar.Settings {
	s := grammar.Settings{}
	for _, o := range opts {
		o(&s)
	}
	return s
}
