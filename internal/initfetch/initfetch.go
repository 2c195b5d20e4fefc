// Package initfetch is the init-fetch command: it reads a plan, fetches every
// secret of it from AWS Secrets Manager, and writes them as read-only files
// into a memory-backed directory, all of them or none.
//
//	flags + env -> plan -> check the directory -> fetch all (bounded, with
//	backoff) -> write atomically -> zero the buffers -> nil, or an error, no
//	new files and a termination message
//
// Run takes all its input and output as arguments, so tests drive it in
// process; cmd/init-fetch only wires it to os.Args, the environment, stderr
// and a signal context.
package initfetch

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/secretfetch/secretfetch/internal/clip"
	"github.com/secretfetch/secretfetch/internal/fetch"
	"github.com/secretfetch/secretfetch/internal/plan"
	"github.com/secretfetch/secretfetch/internal/restart"
	"github.com/secretfetch/secretfetch/internal/tmpfs"
)

const (
	// DefaultTimeout bounds the whole run, retries included.
	DefaultTimeout = 2 * time.Minute
	// DefaultTerminationLog is where kubelet reads a container's
	// termination message from, unless the pod says otherwise.
	DefaultTerminationLog = "/dev/termination-log"
	// MaxTerminationMessage is kubelet's cap on a termination message.
	MaxTerminationMessage = 4096
	// maxPlanFile bounds a plan read from a file; a real plan is a few KiB.
	maxPlanFile = 1 << 20
)

// Option changes how Run reaches AWS or its surroundings; tests use them.
type Option func(*settings)

type settings struct {
	clients               fetch.ClientFunc
	newBackOff            func() backoff.BackOff
	defaultTerminationLog string
	// now and sleep are the refresh sidecar's clock; nil means the real one.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

// WithClients makes Run use c for Secrets Manager instead of clients built
// from the SDK's default configuration chain.
func WithClients(c fetch.ClientFunc) Option { return func(s *settings) { s.clients = c } }

// WithBackOff replaces the wait schedule between retries.
func WithBackOff(f func() backoff.BackOff) Option { return func(s *settings) { s.newBackOff = f } }

// withDefaultTerminationLog replaces /dev/termination-log, so tests never
// touch the real one.
func withDefaultTerminationLog(path string) Option {
	return func(s *settings) { s.defaultTerminationLog = path }
}

// withClock replaces the refresh sidecar's clock, so tests never wait.
func withClock(now func() time.Time, sleep func(context.Context, time.Duration) error) Option {
	return func(s *settings) { s.now, s.sleep = now, sleep }
}

// flags are the command line of init-fetch.
type flags struct {
	plan           string
	dir            string
	secrets        secretFlags
	region         string
	concurrency    int
	timeout        time.Duration
	allowNonTmpfs  bool
	terminationLog string
	refresh        refreshFlags
	set            map[string]bool // flags given explicitly
}

// secretFlags collects repeated --secret NAME=ID flags.
type secretFlags []plan.Secret

func (s *secretFlags) String() string { return fmt.Sprint(len(*s)) }

func (s *secretFlags) Set(v string) error {
	name, id, ok := strings.Cut(v, "=")
	if !ok || name == "" || id == "" {
		return errors.New("want NAME=ID, for example db=prod/db")
	}
	*s = append(*s, plan.Secret{File: name, ID: id})
	return nil
}

func parseFlags(args []string, stderr io.Writer, defaultTerminationLog string) (*flags, error) {
	f := &flags{set: map[string]bool{}}
	fs := flag.NewFlagSet("init-fetch", flag.ContinueOnError)
	// Keep stderr JSON lines: a bad flag is reported by the caller's log
	// line, and only -h prints the usage text.
	fs.SetOutput(io.Discard)
	fs.StringVar(&f.plan, "plan", "", "the plan: a file path, or inline JSON starting with '{' (default: $"+plan.EnvVar+")")
	fs.StringVar(&f.dir, "dir", "", "short form: the directory to write into (default "+plan.DefaultDir+")")
	fs.Var(&f.secrets, "secret", "short form: NAME=ID, one file NAME from the secret ID (name or ARN); repeatable")
	fs.StringVar(&f.region, "region", "", "short form: the AWS region for secrets given by name (default: the SDK's, e.g. $AWS_REGION)")
	fs.IntVar(&f.concurrency, "concurrency", fetch.DefaultConcurrency, "how many GetSecretValue requests to make at once")
	fs.DurationVar(&f.timeout, "timeout", DefaultTimeout, "deadline for the whole run, retries included")
	fs.BoolVar(&f.allowNonTmpfs, "allow-non-tmpfs", false, "write into a directory that is not memory-backed; for local use only, never in a pod")
	fs.StringVar(&f.terminationLog, "termination-log", defaultTerminationLog, "where to write the reason for a failure; by default only if the file exists")
	f.refresh.bind(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "Usage: init-fetch [--plan FILE|JSON] | [--dir DIR --secret NAME=ID ...] [flags]\n"+
				"Fetches AWS Secrets Manager secrets into a memory-backed directory, all of them or none.\n\n")
			fs.SetOutput(stderr)
			fs.PrintDefaults()
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q; init-fetch takes flags only", fs.Arg(0))
	}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	if f.concurrency < 1 {
		return nil, fmt.Errorf("--concurrency is %d; it must be at least 1", f.concurrency)
	}
	if f.timeout <= 0 {
		return nil, fmt.Errorf("--timeout is %v; it must be positive", f.timeout)
	}
	if err := f.refresh.check(f.set); err != nil {
		return nil, err
	}
	return f, nil
}

// Run is init-fetch. args are the command-line arguments without the program
// name; getenv reads the environment (for the plan only: the AWS SDK reads
// its own settings from the process environment); logs go to stderr as JSON
// lines. It returns nil when every file was written, and otherwise an error
// after it has logged the failure and written the termination message. In
// refresh mode it returns nil when ctx ends, and with --refresh-restart a
// *restart.Error when the pod is to restart: ExitCode maps each to the
// process's exit code.
func Run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, opts ...Option) error {
	st := settings{defaultTerminationLog: DefaultTerminationLog}
	for _, o := range opts {
		o(&st)
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))

	f, err := parseFlags(args, stderr, st.defaultTerminationLog)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		// The termination message says what was wrong, at the default
		// place if it exists: --termination-log may not have been parsed.
		err = fmt.Errorf("reading flags: %w", err)
		reportFailure(log, st.defaultTerminationLog, false, err)
		return err
	}
	if err := run(ctx, f, getenv, log, &st); err != nil {
		var re *restart.Error
		if errors.As(err, &re) {
			reportRestart(log, f.terminationLog, f.set["termination-log"], re)
			return err
		}
		reportFailure(log, f.terminationLog, f.set["termination-log"], err)
		return err
	}
	return nil
}

// ExitCode is the exit code for an error of Run: 0 for none,
// plan.RestartExitCode for a *restart.Error (the refresh sidecar asking for
// a restart of the pod, the only use of that code), and 1 for any other.
func ExitCode(err error) int {
	var re *restart.Error
	switch {
	case err == nil:
		return 0
	case errors.As(err, &re):
		return plan.RestartExitCode
	default:
		return 1
	}
}

func run(ctx context.Context, f *flags, getenv func(string) string, log *slog.Logger, st *settings) error {
	if f.allowNonTmpfs {
		log.Warn("WARNING: --allow-non-tmpfs is set. Secret values may be written to a disk and outlive this process. " +
			"This flag is for local use only; never set it in a pod.")
	}
	p, err := loadPlan(f, getenv)
	if err != nil {
		return err
	}

	// Check where the files go before asking AWS for anything.
	dir, err := tmpfs.OpenDir(p.Dir)
	if err != nil {
		return err
	}
	defer dir.Close()
	if err := dir.CheckMemoryBacked(); err != nil {
		if !f.allowNonTmpfs || !errors.Is(err, tmpfs.ErrNotMemoryBacked) {
			return fmt.Errorf("%w; mount a memory-backed volume there (emptyDir with medium: Memory)", err)
		}
		log.Warn("WARNING: the directory is NOT memory-backed; writing into it anyway because of --allow-non-tmpfs",
			"dir", p.Dir, "reason", err.Error())
	}
	files, err := layoutDir(dir, p, log)
	if err != nil {
		return err
	}
	if files != dir {
		defer files.Close()
	}
	if f.refresh.on() {
		return runRefresh(ctx, f, p, dir, files, getenv, log, st)
	}
	envDir, err := openEnvDir(p, f.allowNonTmpfs, log)
	if err != nil {
		return err
	}
	if envDir != nil {
		defer envDir.Close()
	}
	clients, err := fetchClients(ctx, p, getenv, st)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()

	log.Info("fetching secrets", "dir", p.Dir, "secrets", len(p.Secrets),
		"concurrency", f.concurrency, "timeout", f.timeout.String())
	calls := &fetch.Calls{}
	results, err := fetch.Fetch(ctx, p, fetch.Options{
		Concurrency: f.concurrency,
		Clients:     clients,
		NewBackOff:  st.newBackOff,
		OnRetry: func(r fetch.Retry) {
			log.Warn("retrying", "id", r.ID, "files", r.Files, "region", r.Region, "code", r.Code, "attempt", r.Attempt,
				"waitMs", r.Wait.Milliseconds(), "error", fetch.ErrorText(r.Err))
		},
		OnFailover:      logFailover(log),
		OnBatchFallback: logBatchFallback(log),
		Calls:           calls,
	})
	// One line of every call made, by API, region and result: the init
	// container lives seconds, so this is its metric.
	log.Info(CallsLogMessage, "calls", calls.Counts())
	var fe *fetch.Error
	if errors.As(err, &fe) {
		for _, e := range fe.Failures {
			log.Error("failed to fetch secret", "id", e.ID, "file", e.File, "region", e.Region, "code", e.Code,
				"attempts", e.Attempts, "error", fetch.ErrorText(e.Err))
		}
	}
	if err != nil {
		return err
	}

	defer fetch.ZeroAll(results)
	for _, r := range results {
		log.Info("fetched secret", "id", r.Secret.ID, "versionId", r.VersionID, "file", r.Secret.File, "region", r.Region,
			"batched", r.Batched, "bytes", len(r.Value), "attempts", r.Attempts, "durationMs", float64(r.Duration.Microseconds())/1000)
	}
	out, err := buildOutputs(p, results)
	defer out.zero()
	if err != nil {
		return err
	}
	if err := out.write(files, envDir, log); err != nil {
		return err
	}
	log.Info("wrote secrets", "dir", p.Dir, "files", len(out.files))
	return nil
}

// layoutDir returns the directory to lay the files out in: the plan's
// Subdir inside root, made and owned by this process, or root itself.
func layoutDir(root *tmpfs.Dir, p *plan.Plan, log *slog.Logger) (*tmpfs.Dir, error) {
	if p.Subdir == "" {
		if shared, err := root.SharedWritable(); err == nil && shared {
			log.Warn("WARNING: the directory is sticky and writable by everyone; where fs.protected_symlinks=1, only this user can open the files through their links. Choose a directory of your own",
				"dir", p.Dir)
		}
		return root, nil
	}
	return root.OwnSubdir(p.Subdir)
}

// loadPlan reads the plan from exactly one source: --plan, the short form,
// or the environment; without any, from the pod's annotations.
func loadPlan(f *flags, getenv func(string) string) (*plan.Plan, error) {
	short := len(f.secrets) > 0 || f.set["dir"] || f.set["region"]
	env := getenv(plan.EnvVar)
	var sources []string
	if f.set["plan"] {
		sources = append(sources, "--plan")
	}
	if short {
		sources = append(sources, "--dir/--secret/--region")
	}
	if env != "" {
		sources = append(sources, "$"+plan.EnvVar)
	}
	switch {
	case len(sources) == 0:
		// The policy mode: the plan is the pod's annotations (annotations.go).
		if path := annotationsFile(getenv); path != "" {
			return planFromAnnotations(path, getenv)
		}
		return nil, fmt.Errorf("no plan: give --plan, set %s, use --dir DIR --secret NAME=ID, or set %s to the pod's annotations (downward API)",
			plan.EnvVar, EnvAnnotationsFile)
	case len(sources) > 1:
		return nil, fmt.Errorf("the plan is given twice (%s); give exactly one", strings.Join(sources, " and "))
	case f.set["plan"]:
		data := []byte(f.plan)
		if !strings.HasPrefix(strings.TrimSpace(f.plan), "{") {
			var err error
			if data, err = readPlanFile(f.plan); err != nil {
				return nil, err
			}
		}
		p, err := plan.Decode(data)
		if err != nil {
			return nil, fmt.Errorf("reading the plan from --plan: %w", err)
		}
		return p, nil
	case short:
		if len(f.secrets) == 0 {
			return nil, errors.New("--dir and --region need at least one --secret NAME=ID")
		}
		p := &plan.Plan{Version: plan.Version, Dir: f.dir, Region: f.region, Secrets: f.secrets}
		if p.Dir == "" {
			p.Dir = plan.DefaultDir
		}
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("building the plan from --dir/--secret: %w", err)
		}
		return p, nil
	default:
		p, err := plan.Decode([]byte(env))
		if err != nil {
			return nil, fmt.Errorf("reading the plan from $%s: %w", plan.EnvVar, err)
		}
		return p, nil
	}
}

func readPlanFile(path string) ([]byte, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading the plan: %w", err)
	}
	defer file.Close()
	data, err := io.ReadAll(io.LimitReader(file, maxPlanFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading the plan from %s: %w", path, err)
	}
	if len(data) > maxPlanFile {
		return nil, fmt.Errorf("reading the plan from %s: larger than %d bytes", path, maxPlanFile)
	}
	return data, nil
}

// reportFailure logs err and writes the termination message.
func reportFailure(log *slog.Logger, path string, explicit bool, err error) {
	log.Error("init-fetch failed; no new secret files were written", "error", logText(err))
	if werr := writeTerminationLog(path, explicit, TerminationMessage(err)); werr != nil {
		log.Error("could not write the termination message", "path", path, "error", fetch.ErrorText(werr))
	}
}

// logText bounds the text of the error of a whole run: a *fetch.Error
// lists every failure (each already cut to fetch.MaxErrorText), so it gets
// room for a few of them; the failures are logged one line each before.
func logText(err error) string {
	return fetch.Truncate(err.Error(), 4*fetch.MaxErrorText)
}

// writeTerminationLog writes msg to path. The default path is written only
// if it exists (kubelet creates it in a container; elsewhere it is absent);
// a path given with --termination-log is created if needed. An empty path
// writes nothing.
func writeTerminationLog(path string, explicit bool, msg string) error {
	if path == "" {
		return nil
	}
	flags := os.O_WRONLY | os.O_TRUNC
	if explicit {
		flags |= os.O_CREATE
	}
	file, err := os.OpenFile(path, flags, 0o644)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := io.WriteString(file, msg); err != nil {
		file.Close()
		return err
	}
	return file.Close()
}

// TerminationMessage is the short reason kubelet shows in `kubectl describe
// pod`: for fetch failures each secret ID with its AWS error code, otherwise
// the error. It never holds a value (no error of this program does) and is at
// most MaxTerminationMessage bytes.
//
// For a fetch failure it holds no text of the error either, only the ID
// and file from the plan, the code, and counts: the error's message comes
// from the endpoint. A code is written only when it has the shape of an AWS
// code (fetch.ValidCode), otherwise fetch.CodeMalformed, and the first
// failure is always named, cut short if it must be.
func TerminationMessage(err error) string {
	var fe *fetch.Error
	if !errors.As(err, &fe) {
		return clip.String("secretfetch: "+err.Error(), MaxTerminationMessage)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "secretfetch: %d of %d secrets failed, no files written:", len(fe.Failures), fe.Total)
	for i, f := range fe.Failures {
		code := f.Code
		if !fetch.ValidCode(code) {
			code = fetch.CodeMalformed
		}
		line := fmt.Sprintf("\n%s (file %s): %s after %d attempt(s)", f.ID, f.File, code, f.Attempts)
		if errors.Is(f.Err, context.DeadlineExceeded) {
			line += ", deadline exceeded"
		}
		more := fmt.Sprintf("\n... and %d more", len(fe.Failures)-i)
		// Keep room for the "and N more" line unless this is the last one.
		room := MaxTerminationMessage - b.Len()
		if i < len(fe.Failures)-1 {
			room -= len(more)
		}
		if len(line) > room && i == 0 {
			// The first failure is always named, even cut short, so the
			// message never reads "and 1 more" about nothing.
			line = clip.String(line, max(room, 0))
		}
		if len(line) > room {
			b.WriteString(clip.String(more, MaxTerminationMessage-b.Len()))
			break
		}
		b.WriteString(line)
	}
	return b.String()
}
