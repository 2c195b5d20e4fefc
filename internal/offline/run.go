package offline

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/secretfetch/secretfetch/internal/features"
	"github.com/secretfetch/secretfetch/internal/webhook"
)

// The install modes render can stand for.
const (
	ModeWebhook = "webhook"
	ModePolicy  = "policy"
)

// DefaultKubernetesVersion is the cluster render assumes: the oldest with
// every feature secretfetch uses (EnvFiles, RestartAllContainers), and the
// oldest the policy mode runs on (MutatingAdmissionPolicy GA).
const DefaultKubernetesVersion = "v1.36.0"

// ErrDenied is Run's error when a pod template would be denied; the
// problems are on stderr.
var ErrDenied = errors.New("a pod template would be denied")

// webhookFlags are the webhook's flags that decide a mutation: render
// takes them with the webhook's own defaults and help (webhook.Config's
// BindFlags), so that the two cannot drift.
var webhookFlags = []string{"init-image", "default-region", "default-failover-region", "secretsmanager-endpoint",
	"failover-secretsmanager-endpoint", "sts-endpoint",
	"allow-node-credentials", "min-refresh-interval", "env-files", "refresh-restart", "refresh-restart-window",
	"refresh-restart-spacing", "volume-size-limit", "init-resources"}

// policyless are the webhook's flags that the policy mode has no parameter
// for: it always runs with their defaults.
var policyless = []string{"allow-node-credentials", "env-files", "refresh-restart", "init-resources"}

// options are render's command line.
type options struct {
	files   []string
	mode    string
	version string
	wh      webhook.Config
	set     map[string]bool
}

const usage = `Usage: secretfetch render -f FILE [-f FILE ...] [flags]

Prints the manifests with every opted-in pod template (Pod, Deployment,
StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job, CronJob)
mutated as the webhook would mutate its pods, and other documents as they
are; or, on stderr, every problem that would deny a template, with the
webhook's message, and exits 1. No cluster is needed.

`

// Run is the secretfetch command. args are the arguments without the
// program name; FILE "-" reads stdin.
func Run(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "render" {
		fmt.Fprint(stderr, usage)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return nil
		}
		return errors.New("the command is: secretfetch render -f FILE")
	}
	o, err := parseRender(args[1:], stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	r, err := o.renderer()
	if err != nil {
		return err
	}
	denied := false
	first := true
	for _, file := range o.files {
		data, err := readFile(file, stdin)
		if err != nil {
			return err
		}
		res, err := r.Render(data, file)
		if err != nil {
			return err
		}
		for _, doc := range res.Documents {
			if !first {
				io.WriteString(stdout, "---\n")
			}
			first = false
			stdout.Write(doc)
			if len(doc) > 0 && doc[len(doc)-1] != '\n' {
				io.WriteString(stdout, "\n")
			}
		}
		for _, p := range res.Problems {
			fmt.Fprintln(stderr, p.String())
		}
		denied = denied || len(res.Problems) > 0
	}
	if denied {
		return ErrDenied
	}
	return nil
}

func parseRender(args []string, stderr io.Writer) (*options, error) {
	o := &options{set: map[string]bool{}}
	fs := flag.NewFlagSet("secretfetch render", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Func("f", `a manifest to render, "-" for stdin; repeatable`, func(s string) error {
		o.files = append(o.files, s)
		return nil
	})
	fs.StringVar(&o.mode, "mode", ModeWebhook, "the install mode to render for: webhook or policy (see the README for where they differ)")
	fs.StringVar(&o.version, "kubernetes-version", DefaultKubernetesVersion,
		"the cluster's version, as its API server reports it; it decides env-<name> (1.35+) and refresh-restart (1.36+)")
	// The webhook's own flags, defaults and help.
	whFlags := flag.NewFlagSet("webhook", flag.ContinueOnError)
	o.wh.BindFlags(whFlags)
	for _, name := range webhookFlags {
		f := whFlags.Lookup(name)
		fs.Var(f.Value, name, f.Usage)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, usage)
			fs.SetOutput(stderr)
			fs.PrintDefaults()
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q; give manifests with -f", fs.Arg(0))
	}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	if len(o.files) == 0 {
		return nil, errors.New("no manifest: give -f FILE (or -f - for stdin)")
	}
	if o.mode != ModeWebhook && o.mode != ModePolicy {
		return nil, fmt.Errorf("--mode: %q is not webhook or policy", o.mode)
	}
	return o, nil
}

// renderer is the webhook's configuration for a cluster of o.version, as
// the webhook sets it from its flags and the API server's version.
func (o *options) renderer() (*Renderer, error) {
	cluster, err := features.Parse(o.version)
	if err != nil {
		return nil, fmt.Errorf("--kubernetes-version: %w", err)
	}
	cfg := o.wh.Mutate
	if o.mode == ModePolicy {
		if !cluster.Has(features.RestartAllContainers) {
			return nil, fmt.Errorf("--kubernetes-version: the policy mode needs Kubernetes 1.36 or later (MutatingAdmissionPolicy), and this is %s", o.version)
		}
		var bad []string
		for _, name := range policyless {
			if o.set[name] {
				bad = append(bad, "--"+name)
			}
		}
		if len(bad) > 0 {
			return nil, fmt.Errorf("the policy mode has no parameter for %s; leave it out", strings.Join(bad, ", "))
		}
	}
	switch {
	case o.wh.RefreshRestart == "false":
		cfg.Restart.Enabled, cfg.Restart.Why = false, "the webhook runs with --refresh-restart=false"
	case !cluster.Has(features.RestartAllContainers):
		cfg.Restart.Enabled, cfg.Restart.Why = false, cluster.Why(features.RestartAllContainers)
	default:
		cfg.Restart.Enabled, cfg.Restart.Why = true, ""
	}
	if !cluster.Has(features.EnvFiles) {
		cfg.NoEnvFiles = true
		cfg.NoEnvFilesWhy = cluster.Why(features.EnvFiles)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("checking the settings: %w", err)
	}
	return &Renderer{Config: cfg}, nil
}

// maxManifest bounds a manifest read whole.
const maxManifest = 64 << 20

func readFile(name string, stdin io.Reader) ([]byte, error) {
	var r io.Reader = stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("reading the manifest: %w", err)
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxManifest+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if len(data) > maxManifest {
		return nil, fmt.Errorf("reading %s: larger than %d bytes", name, maxManifest)
	}
	return data, nil
}
