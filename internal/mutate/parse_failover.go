package mutate

import "github.com/secretfetch/secretfetch/internal/grammar"

// WithDefaultFailoverRegion sets the failover region of pods that set no
// secretfetch.io/failover-region (--default-failover-region). It never
// denies a pod: it steps aside for a pod in that region.
func WithDefaultFailoverRegion(region string) ParseOption {
	return func(s *grammar.Settings) { s.DefaultFailoverRegion = region }
}
