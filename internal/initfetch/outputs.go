package initfetch

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/secretfetch/secretfetch/internal/envfile"
	"github.com/secretfetch/secretfetch/internal/fetch"
	"github.com/secretfetch/secretfetch/internal/plan"
	"github.com/secretfetch/secretfetch/internal/refresh"
	"github.com/secretfetch/secretfetch/internal/render"
	"github.com/secretfetch/secretfetch/internal/tmpfs"
)

// Codes of outputs that could not be made from a fetched value.
const (
	// CodeBinaryEnv: a SecretBinary cannot be an environment variable.
	CodeBinaryEnv = envfile.CodeBinaryValue
)

// OutputError is a secret whose value was fetched but cannot be delivered
// as the plan asks: an env var the env file cannot carry, or a file its
// format cannot render. It names the secret, its file or variable and a
// code, never the value.
type OutputError struct {
	ID   string
	File string
	Env  string // set when the env var is at fault
	Code string
	Err  error
}

func (e *OutputError) Error() string {
	what := "file " + e.File
	if e.Env != "" {
		what = "env " + e.Env
	}
	return fmt.Sprintf("%s (%s): %s: %v", e.ID, what, e.Code, e.Err)
}

func (e *OutputError) Unwrap() error { return e.Err }

// OutputsError holds every OutputError of a run, so that one restart of the
// init container shows them all.
type OutputsError struct{ Failures []*OutputError }

func (e *OutputsError) Error() string {
	parts := make([]string, len(e.Failures))
	for i, f := range e.Failures {
		parts[i] = f.Error()
	}
	return fmt.Sprintf("%d of the fetched secrets cannot be delivered, no files written: %s",
		len(e.Failures), strings.Join(parts, "; "))
}

func (e *OutputsError) Unwrap() []error {
	errs := make([]error, len(e.Failures))
	for i, f := range e.Failures {
		errs[i] = f
	}
	return errs
}

// outputs is what run writes: the files of the plan's directory and the env
// file's bytes. The rendered files and the env file are buffers of their
// own; zero clears them.
type outputs struct {
	files []tmpfs.File
	// stateResults are the results behind the files and the env-only
	// variables, for the refresh state.
	stateResults []fetch.Result
	env          []byte
	// own are the buffers made here, which zero clears; the other files
	// share their bytes with the fetch results, which the caller zeroes.
	own [][]byte
}

func (o *outputs) zero() {
	for _, b := range o.own {
		clear(b)
	}
}

// buildOutputs turns the fetched values into files and the env file, or
// fails with an *OutputsError that names every secret at fault.
func buildOutputs(p *plan.Plan, results []fetch.Result) (*outputs, error) {
	o := &outputs{}
	var vars []envfile.Var
	var varSecret []int // the result behind each var, to name it on failure
	var failures []*OutputError
	for i, r := range results {
		s := r.Secret
		fail := func(env, code string, err error) {
			failures = append(failures, &OutputError{ID: s.ID, File: s.File, Env: env, Code: code, Err: err})
		}
		if s.Env != "" {
			if r.Binary {
				fail(s.Env, CodeBinaryEnv, envfile.ErrBinary)
			} else {
				vars = append(vars, envfile.Var{Name: s.Env, Value: r.Value})
				varSecret = append(varSecret, i)
			}
		}
		if s.NoFile {
			o.stateResults = append(o.stateResults, r)
			continue
		}
		data, rendered, err := render.FileData(s, r.Value, r.Binary)
		if err != nil {
			fail("", render.ErrorCode(err), err)
			continue
		}
		if rendered {
			o.own = append(o.own, data)
		}
		o.files = append(o.files, tmpfs.File{Name: s.File, Mode: s.FileMode(), Data: data})
		o.stateResults = append(o.stateResults, r)
	}
	if len(vars) > 0 {
		env, err := envfile.Encode(vars)
		var ve *envfile.ValueError
		for _, e := range unjoin(err) {
			if errors.As(e, &ve) {
				for j, v := range vars {
					if v.Name == ve.Name {
						s := results[varSecret[j]].Secret
						failures = append(failures, &OutputError{ID: s.ID, File: s.File, Env: s.Env, Code: envfile.CodeUnsupportedValue, Err: ve.Reason})
						break
					}
				}
			} else {
				// The plan makes names unique; this is a fault, not the user's.
				return o, fmt.Errorf("writing the env file: %w", e)
			}
		}
		o.env = env
		o.own = append(o.own, env)
	}
	if len(failures) > 0 {
		return o, &OutputsError{Failures: failures}
	}
	return o, nil
}

// unjoin lists the errors of an errors.Join, or err alone.
func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// openEnvDir opens the env file's directory, when the plan has one, and
// checks it as run checks the plan's directory: before anything is fetched.
func openEnvDir(p *plan.Plan, allowNonTmpfs bool, log *slog.Logger) (*tmpfs.Dir, error) {
	if p.EnvDir == "" {
		return nil, nil
	}
	dir, err := tmpfs.OpenDir(p.EnvDir)
	if err != nil {
		return nil, fmt.Errorf("opening the env file's directory: %w", err)
	}
	if err := dir.CheckMemoryBacked(); err != nil {
		if !allowNonTmpfs || !errors.Is(err, tmpfs.ErrNotMemoryBacked) {
			dir.Close()
			return nil, fmt.Errorf("%w; mount a memory-backed volume there (emptyDir with medium: Memory)", err)
		}
		log.Warn("WARNING: the env file's directory is NOT memory-backed; writing into it anyway because of --allow-non-tmpfs",
			"dir", p.EnvDir, "reason", err.Error())
	}
	return dir, nil
}

// write writes the env file, then the files, in the layout that the refresh
// sidecar swaps, with the versions it starts from: of the files, and of the
// env-only variables, which a sidecar that restarts the pod on a new
// version polls (the others read once, at container start). The env file
// goes first: the kubelet reads it only after this container succeeds, and
// a failure later leaves the pod stopped either way.
func (o *outputs) write(dir, envDir *tmpfs.Dir, log *slog.Logger) error {
	if envDir != nil {
		if err := envDir.WriteAll([]tmpfs.File{{Name: plan.EnvFileName, Mode: 0o400, Data: o.env}}); err != nil {
			return fmt.Errorf("writing the env file: %w", err)
		}
		log.Info("wrote env file", "dir", envDir.Path(), "file", plan.EnvFileName, "bytes", len(o.env))
	}
	return dir.WriteSet(tmpfs.Set{Files: o.files, State: refresh.NewState(o.stateResults)})
}
