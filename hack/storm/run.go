package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/secretfetch/secretfetch/internal/smfake"
)

// outcome is how one init-fetch process ended.
type outcome struct {
	err      error
	code     string // the code of its failure line, if any
	attempts int    // from its success or failure line
	took     time.Duration
	maxRSS   int64 // KiB
	stderr   int64 // bytes
}

// serve serves h on a fresh loopback port until the returned stop is
// called.
func serve(h http.Handler) (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("listening on loopback: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			srv.Close()
		}
		<-done
	}, nil
}

// workDir makes the directory of a run's files, and a done that removes
// it, unless keep asks to keep it: then its path is printed instead.
func workDir(prefix string, keep bool, out io.Writer) (dir string, done func(), err error) {
	dir, err = os.MkdirTemp("", prefix)
	if err != nil {
		return "", nil, err
	}
	if keep {
		fmt.Fprintln(out, "work directory:", dir)
		return dir, func() {}, nil
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

// env is the whole environment of an init-fetch process: the fake's
// static keys, its endpoint, and nothing of the caller's AWS settings.
func env(url, home string) []string {
	return []string{
		"HOME=" + home,
		"AWS_CONFIG_FILE=" + filepath.Join(home, "none"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "none"),
		"AWS_ACCESS_KEY_ID=" + smfake.DefaultAccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + smfake.DefaultSecretAccessKey,
		"AWS_REGION=" + smfake.DefaultRegion,
		"AWS_ENDPOINT_URL_SECRETS_MANAGER=" + url,
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// start runs one init-fetch into dir, with its stderr in a file, and
// returns a function that waits for it.
func start(ctx context.Context, c config, url, work string, i int) (func() outcome, error) {
	dir := filepath.Join(work, fmt.Sprintf("p%03d", i))
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(work, fmt.Sprintf("p%03d.log", i)))
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, c.initFetch, "--dir", dir, "--secret", "db=storm/db",
		"--allow-non-tmpfs", "--timeout", c.timeout.String(),
		"--termination-log", filepath.Join(work, fmt.Sprintf("p%03d.termination-log", i)))
	cmd.Env = env(url, work)
	cmd.Stdout, cmd.Stderr = logf, logf
	began := time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", c.initFetch, err)
	}
	return func() outcome {
		o := outcome{err: cmd.Wait()}
		o.took = time.Since(began)
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			o.maxRSS = ru.Maxrss // KiB on Linux
		}
		if st, err := logf.Stat(); err == nil {
			o.stderr = st.Size()
		}
		logf.Seek(0, io.SeekStart)
		o.code, o.attempts = summary(logf)
		logf.Close()
		return o
	}, nil
}

// summary reads init-fetch's JSON log lines for the code of a failure and
// the attempts of the last success or failure line. Lines are read up to
// 64 KiB each; a longer one (the unbounded error text this program exists
// to catch) is skipped.
func summary(r io.Reader) (code string, attempts int) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		var l struct {
			Msg      string `json:"msg"`
			Code     string `json:"code"`
			Attempts int    `json:"attempts"`
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		switch l.Msg {
		case "failed to fetch secret":
			code, attempts = l.Code, l.Attempts
		case "fetched secret":
			attempts = l.Attempts
		}
	}
	return code, attempts
}

// storm starts c.n processes at once against the rate-capped fake and
// prints what happened.
func storm(ctx context.Context, c config, out io.Writer) error {
	fk := smfake.New()
	if _, _, err := fk.CreateSecret("storm/db", smfake.Value{String: `{"user":"storm","password":"not-a-real-one"}`}); err != nil {
		return err
	}
	fk.LimitRate("GetSecretValue", c.rate, c.burst)
	var h http.Handler = fk
	cut := &cutter{next: fk, every: c.cutEvery}
	if c.cutEvery > 0 {
		h = cut
	}
	url, stop, err := serve(h)
	if err != nil {
		return err
	}
	defer stop()
	work, done, err := workDir("storm-", c.keep, out)
	if err != nil {
		return err
	}
	defer done()

	fmt.Fprintf(out, "storm: %d init-fetch processes at once, fake capped at %g GetSecretValue/s (burst %d), %s\n",
		c.n, c.rate, c.burst, c.initFetch)
	if c.cutEvery > 0 {
		fmt.Fprintf(out, "cutting every %d-th answer mid-body\n", c.cutEvery)
	}
	began := time.Now()
	waits := make([]func() outcome, 0, c.n)
	for i := range c.n {
		w, err := start(ctx, c, url, work, i)
		if err != nil {
			// Wait for the ones already started before giving up.
			for _, w := range waits {
				w()
			}
			return err
		}
		waits = append(waits, w)
	}
	outcomes := make([]outcome, c.n)
	var wg sync.WaitGroup
	for i, w := range waits {
		wg.Go(func() { outcomes[i] = w() })
	}
	wg.Wait()
	wall := time.Since(began)

	var ok int
	failures := map[string]int{}
	var attempts []int
	var took []time.Duration
	var rss int64
	for _, o := range outcomes {
		if o.err == nil {
			ok++
		} else {
			failures[cmp.Or(o.code, "exit: "+o.err.Error())]++
		}
		attempts = append(attempts, o.attempts)
		took = append(took, o.took)
		rss = max(rss, o.maxRSS)
	}
	var calls, throttled, other int
	for _, r := range fk.Requests() {
		if r.Operation != "GetSecretValue" {
			continue
		}
		calls++
		switch r.Code {
		case "":
		case "ThrottlingException":
			throttled++
		default:
			other++
		}
	}
	ideal := max(0, float64(c.n-c.burst)/c.rate)
	slices.Sort(attempts)
	slices.Sort(took)
	fmt.Fprintf(out, "successes:      %d of %d (%.1f%%)\n", ok, c.n, 100*float64(ok)/float64(c.n))
	if len(failures) > 0 {
		fmt.Fprintf(out, "failures:       %v\n", failures)
	}
	fmt.Fprintf(out, "calls:          %d GetSecretValue (%d answered, %d throttled, %d other errors)\n", calls, calls-throttled-other, throttled, other)
	if c.cutEvery > 0 {
		fmt.Fprintf(out, "cut answers:    %d\n", cut.cuts.Load())
	}
	fmt.Fprintf(out, "amplification:  %.2f calls per process (attempts per process: median %d, p90 %d, max %d)\n",
		float64(calls)/float64(c.n), pct(attempts, 50), pct(attempts, 90), pct(attempts, 100))
	fmt.Fprintf(out, "wall time:      %.2f s, ideal %.2f s ((N - burst) / R), ratio %.2f\n", wall.Seconds(), ideal, wall.Seconds()/max(ideal, 0.001))
	fmt.Fprintf(out, "per process:    median %.2f s, p90 %.2f s, max %.2f s; peak RSS of any %.1f MiB\n",
		pct(took, 50).Seconds(), pct(took, 90).Seconds(), pct(took, 100).Seconds(), float64(rss)/1024)
	if ok != c.n {
		return fmt.Errorf("%d of %d processes failed", c.n-ok, c.n)
	}
	return nil
}

// cutter passes requests to next, and cuts every every-th answer off
// halfway through its body: status line, headers and half the body are
// sent, then the connection is closed, as when a connection drops under
// load while the client reads the body.
type cutter struct {
	next  http.Handler
	every int
	n     atomic.Int64
	cuts  atomic.Int64
}

func (c *cutter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if c.n.Add(1)%int64(c.every) != 0 {
		c.next.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	c.next.ServeHTTP(rec, r)
	conn, buf, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	c.cuts.Add(1)
	body := rec.Body.Bytes()
	fmt.Fprintf(buf, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
		rec.Code, http.StatusText(rec.Code), rec.Header().Get("Content-Type"), len(body))
	buf.Write(body[:len(body)/2])
	buf.Flush()
}

// huge runs one process against an answer of c.hugeBytes bytes.
func huge(ctx context.Context, c config, out io.Writer) error {
	var sent, calls int64
	var mu sync.Mutex
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		calls++
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(c.hugeStatus)
		member := "SecretString"
		if c.hugeStatus != 200 {
			member = "Message"
		}
		io.WriteString(w, `{"__type":"ThrottlingException","ARN":"arn:aws:secretsmanager:us-east-1:111122223333:secret:storm/db-AbCdEf","Name":"storm/db","VersionId":"v1","`+member+`":"`)
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for left := c.hugeBytes; left > 0; left -= int64(len(chunk)) {
			n, err := w.Write(chunk[:min(int64(len(chunk)), left)])
			mu.Lock()
			sent += int64(n)
			mu.Unlock()
			if err != nil {
				return
			}
		}
		io.WriteString(w, `"}`)
	})
	url, stop, err := serve(h)
	if err != nil {
		return err
	}
	defer stop()
	work, done, err := workDir("storm-huge-", c.keep, out)
	if err != nil {
		return err
	}
	defer done()
	wait, err := start(ctx, c, url, work, 0)
	if err != nil {
		return err
	}
	o := wait()
	file, _ := os.Stat(filepath.Join(work, "p000", "db"))
	written := int64(0)
	if file != nil {
		written = file.Size()
	}
	term, _ := os.ReadFile(filepath.Join(work, "p000.termination-log"))
	mu.Lock()
	defer mu.Unlock()
	fmt.Fprintf(out, "huge answer:    HTTP %d with %d bytes of %s, %s\n", c.hugeStatus, c.hugeBytes,
		map[int]string{200: "SecretString", 400: "error message"}[c.hugeStatus], c.initFetch)
	fmt.Fprintf(out, "exit:           %v after %.2f s, %d call(s); file written: %d bytes\n", o.err, o.took.Seconds(), calls, written)
	fmt.Fprintf(out, "termination:    %q\n", strings.TrimSpace(string(term)))
	fmt.Fprintf(out, "served:         %.1f MiB before the client stopped reading\n", float64(sent)/(1<<20))
	fmt.Fprintf(out, "stderr:         %d bytes\n", o.stderr)
	fmt.Fprintf(out, "peak RSS:       %.1f MiB (ru_maxrss %d KiB)\n", float64(o.maxRSS)/1024, o.maxRSS)
	return nil
}

// pct is the p-th percentile of sorted.
func pct[T any](sorted []T, p int) T {
	if len(sorted) == 0 {
		var zero T
		return zero
	}
	return sorted[min(len(sorted)-1, (len(sorted)*p)/100)]
}
