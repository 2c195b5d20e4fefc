package webhook

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"

	"github.com/go-logr/logr"
)

// LogOptions are the webhook's logging flags. The webhook logs as init-fetch,
// the refresh sidecar and the fake Secrets Manager do, in log/slog's JSON
// lines; logr, which controller-runtime and the handler log through, writes
// into that handler.
//
// It is log/slog and not zap on purpose: zap and its logr adapter made the
// webhook's binary 0.9 MB larger, and its resident memory 1.8 MB larger at
// rest and about 1.5 MB under load, at no gain in speed
// (docs/benchmarks.md, "The binary's pages").
type LogOptions struct {
	Level  string
	Format string
}

// Values of --log-format.
const (
	LogJSON = "json"
	LogText = "text"
)

// BindFlags registers --log-level and --log-format on fs.
func (o *LogOptions) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.Level, "log-level", "info",
		"the least that is logged: error, info, debug (verbosity 1 to 4), or a logr verbosity N (info and V(1) to V(N))")
	fs.StringVar(&o.Format, "log-format", LogJSON, "json or text (log/slog's key=value lines)")
}

// NewLogger returns the logger the flags ask for, writing to w, or an error
// that names the flag at fault.
func (o LogOptions) NewLogger(w io.Writer) (logr.Logger, error) {
	level, err := parseLogLevel(o.Level)
	if err != nil {
		return logr.Logger{}, err
	}
	opts := &slog.HandlerOptions{Level: level}
	switch o.Format {
	case LogJSON, "":
		return logr.FromSlogHandler(slog.NewJSONHandler(w, opts)), nil
	case LogText:
		return logr.FromSlogHandler(slog.NewTextHandler(w, opts)), nil
	default:
		return logr.Logger{}, fmt.Errorf("--log-format: %q is neither %s nor %s", o.Format, LogJSON, LogText)
	}
}

// parseLogLevel maps a level to slog's: logr's V(n) is slog.Level(-n), its
// errors slog.LevelError.
func parseLogLevel(s string) (slog.Level, error) {
	switch s {
	case "info", "":
		return slog.LevelInfo, nil
	case "debug":
		return slog.LevelDebug, nil
	case "error":
		return slog.LevelError, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 127 {
		return 0, fmt.Errorf("--log-level: %q is not error, info, debug, or a verbosity from 0 to 127", s)
	}
	return slog.Level(-n), nil
}
