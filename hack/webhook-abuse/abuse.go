package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/secretfetch/secretfetch/hack/certs/pki"
)

type config struct {
	binary     string
	slow       int
	streams    int
	bodyBytes  int
	hold       time.Duration
	probeEvery time.Duration
	reviewFile string
	// reconnectPause is how long a client cut off by the server waits
	// before it tries again; 0 is a flood whose TLS handshakes and bodies
	// cost this process, on the same cores, as much CPU as the webhook.
	reconnectPause time.Duration
	gogc           string
	// crafted is the number of clients that send, over and over, a whole
	// review of the kind craftedKind names (see craftedBody): few bytes
	// of JSON each that decode into large structs.
	crafted     int
	craftedKind string
	// headers is the number of connections that each send headerBytes of
	// headers without the blank line that ends them, and wait.
	headers     int
	headerBytes int
	headerLine  int // bytes of each header line
	// memoryLimitMiB, when not 0, runs the webhook in a memory cgroup of
	// that many MiB, as the Deployment's limit (256).
	memoryLimitMiB int64
}

// tally counts the outcomes of abusive requests by what the server did.
type tally struct {
	mu       sync.Mutex
	attempts int
	outcomes map[string]int
}

func (t *tally) add(outcome string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.attempts++
	if t.outcomes == nil {
		t.outcomes = map[string]int{}
	}
	t.outcomes[outcome]++
}

func (t *tally) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	keys := make([]string, 0, len(t.outcomes))
	for k := range t.outcomes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, t.outcomes[k]))
	}
	return fmt.Sprintf("%d requests: %s", t.attempts, strings.Join(parts, ", "))
}

type probe struct {
	latency time.Duration
	outcome string
}

func run(ctx context.Context, c config, out io.Writer) error {
	if c.binary == "" {
		return errors.New("--binary is required")
	}
	if c.slow < 0 || c.streams < 0 || c.headers < 0 || c.bodyBytes < 2 || c.headerBytes < 1 || c.headerLine < 1 || c.hold <= 0 || c.probeEvery <= 0 {
		return errors.New("--slow, --streams and --headers must be >= 0, --body-bytes >= 2, --header-bytes and --header-line-bytes >= 1, --hold and --probe-every > 0")
	}
	var crafted []byte
	if c.crafted > 0 {
		var err error
		if crafted, err = craftedBody(c.craftedKind); err != nil {
			return err
		}
	}
	review, err := os.ReadFile(c.reviewFile)
	if err != nil {
		return fmt.Errorf("reading the normal review: %w", err)
	}
	dir, err := os.MkdirTemp("", "webhook-abuse")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bundle, err := pki.New(pki.Options{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		return err
	}
	if err := bundle.WriteDir(dir); err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(bundle.CACert)

	wh, err := startWebhook(ctx, c.binary, dir, c.gogc, c.memoryLimitMiB<<20)
	if err != nil {
		return err
	}
	defer wh.stop()
	baseRSS := wh.status("VmRSS")
	go wh.sampleRSS(100 * time.Millisecond)

	tlsConf := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	attackCtx, endAttack := context.WithTimeout(ctx, c.hold)
	defer endAttack()
	junk := append([]byte(`{"x":"`), bytes.Repeat([]byte("a"), c.bodyBytes)...)[:c.bodyBytes-1]

	var wg sync.WaitGroup
	var slowTally, streamTally tally
	for range c.slow {
		wg.Go(func() { stallLoop(attackCtx, wh.addr, tlsConf, junk, c.bodyBytes, c.reconnectPause, &slowTally) })
	}
	h2, err := negotiatesH2(wh.addr, tlsConf)
	if err != nil {
		return err
	}
	streamsHow := "HTTP/2 streams on one connection"
	if h2 {
		for range c.streams {
			wg.Go(func() { streamLoop(attackCtx, wh.addr, tlsConf, junk, c.bodyBytes, c.reconnectPause, &streamTally) })
		}
	} else {
		streamsHow = "HTTP/1.1 connections (the server refused h2 in ALPN)"
		for range c.streams {
			wg.Go(func() { stallLoop(attackCtx, wh.addr, tlsConf, junk, c.bodyBytes, c.reconnectPause, &streamTally) })
		}
	}

	var craftedTally, headerTally tally
	for range c.crafted {
		wg.Go(func() { craftedLoop(attackCtx, wh.addr, tlsConf, crafted, &craftedTally) })
	}
	for range c.headers {
		wg.Go(func() {
			headerLoop(attackCtx, wh.addr, tlsConf, c.headerBytes, c.headerLine, c.reconnectPause, &headerTally)
		})
	}

	// Let the abusive bodies arrive before the first normal review.
	select {
	case <-attackCtx.Done():
	case <-time.After(time.Second):
	}
	var probes []probe
	tick := time.NewTicker(c.probeEvery)
	defer tick.Stop()
probing:
	for {
		probes = append(probes, normalReview(ctx, wh.addr, tlsConf, review))
		select {
		case <-attackCtx.Done():
			break probing
		case <-tick.C:
		}
	}
	endAttack()
	wg.Wait()
	hwm := max(wh.status("VmHWM"), int(wh.maxRSS.Load()))

	fmt.Fprintf(out, "webhook %s on %s, %d slow-body connections and %d %s, bodies of %d bytes (all but the last sent), held %v\n",
		c.binary, wh.addr, c.slow, c.streams, streamsHow, c.bodyBytes, c.hold)
	fmt.Fprintf(out, "clients cut off reconnect after %v; webhook GOGC=%s GOMEMLIMIT=200MiB; CPU: webhook %v, this process %v\n",
		c.reconnectPause, c.gogc, wh.cpu().Round(10*time.Millisecond), selfCPU().Round(10*time.Millisecond))
	fmt.Fprintf(out, "webhook RSS: %d MiB at rest, peak %d MiB (VmHWM)\n", baseRSS>>10, hwm>>10)
	if wh.cgroup != nil {
		fmt.Fprintf(out, "memory cgroup of %d MiB: peak %d MiB (page cache included), %d OOM kills\n",
			c.memoryLimitMiB, wh.cgroup.peak()>>20, wh.cgroup.oomKills())
	}
	select {
	case <-wh.done:
		fmt.Fprintf(out, "THE WEBHOOK DIED during the attack: %v\n", wh.cmd.ProcessState)
	default:
	}
	fmt.Fprintf(out, "slow bodies: %s\n", &slowTally)
	fmt.Fprintf(out, "streams:     %s\n", &streamTally)
	if c.headers > 0 {
		fmt.Fprintf(out, "headers:     %d connections of %d bytes of headers in lines of %d: %s\n", c.headers, c.headerBytes, c.headerLine, &headerTally)
	}
	if c.crafted > 0 {
		fmt.Fprintf(out, "crafted:     %d clients, %s review of %d bytes: %s\n", c.crafted, c.craftedKind, len(crafted), &craftedTally)
	}
	fmt.Fprintln(out, summarize(probes))
	return nil
}

// maxReviewBody is the webhook's cap on a body, 3.5 MiB.
const maxReviewBody = 7 << 19

// craftedBody is a crafted review of an opted-in pod:
//
//   - empty-containers: 9,990 empty containers ("{}," each), just under the
//     10,000-object cap of the first round of hardening.
//   - zeros: containers of "0," up to 3.5 MiB, about 1.8 million, which the
//     object cap let through: each decodes to a 408-byte container and a
//     type error.
//   - at-caps: containers, init containers and ephemeral containers of
//     2,048 nulls each, padded with spaces to 3.5 MiB: the costliest review
//     the decode bounds of the second round admit.
func craftedBody(kind string) ([]byte, error) {
	const head = `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"crafted",` +
		`"kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},` +
		`"operation":"CREATE","namespace":"abuse","object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"crafted",` +
		`"annotations":{"secretfetch.io/inject":"true","secretfetch.io/secret-db":"prod/db"}},"spec":{`
	const tail = `}}}}`
	list := func(name, elem string, n int) string {
		return `"` + name + `":[` + strings.TrimSuffix(strings.Repeat(elem+",", n), ",") + `]`
	}
	switch kind {
	case "empty-containers":
		return []byte(head + list("containers", "{}", 9990) + tail), nil
	case "zeros":
		n := (maxReviewBody - len(head) - len(tail) - len(`"containers":[]`) + 1) / 2
		return []byte(head + list("containers", "0", n) + tail), nil
	case "at-caps":
		b := []byte(head + list("containers", "null", 2048) + "," + list("initContainers", "null", 2048) + "," +
			list("ephemeralContainers", "null", 2048) + tail)
		return append(b, bytes.Repeat([]byte(" "), maxReviewBody-len(b))...), nil
	}
	return nil, fmt.Errorf("--crafted-review %q is not empty-containers, zeros or at-caps", kind)
}

// craftedLoop sends review until ctx ends, one request after another on
// fresh connections, and counts the answers.
func craftedLoop(ctx context.Context, addr string, conf *tls.Config, review []byte, t *tally) {
	tr := &http.Transport{TLSClientConfig: conf.Clone()}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for ctx.Err() == nil {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+addr+"/mutate-v1-pod", bytes.NewReader(review))
		if err != nil {
			t.add("bad request")
			return
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			if ctx.Err() == nil {
				t.add("failed")
			}
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.add(answerOutcome(resp.StatusCode, b))
	}
}

// summarize describes the normal reviews: how many were answered 200 with a
// patch, and their latency.
func summarize(probes []probe) string {
	var lat []time.Duration
	outcomes := map[string]int{}
	for _, p := range probes {
		outcomes[p.outcome]++
		if p.outcome == "injected" {
			lat = append(lat, p.latency)
		}
	}
	s := fmt.Sprintf("normal reviews: %d sent, %v", len(probes), outcomes)
	if len(lat) == 0 {
		return s + "; none injected"
	}
	slices.Sort(lat)
	return s + fmt.Sprintf("; latency of the injected (fresh TLS connection each): median %v, max %v",
		lat[len(lat)/2].Round(100*time.Microsecond), lat[len(lat)-1].Round(100*time.Microsecond))
}

// webhook is the started binary.
type webhook struct {
	cmd    *exec.Cmd
	addr   string
	done   chan struct{}
	cgroup *memoryCgroup // nil without --memory-limit-mib
	maxRSS atomic.Int64  // the largest VmRSS sampled, in kB
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startWebhook starts the binary on loopback with the GOGC and GOMEMLIMIT of
// manifests/base/deployment.yaml, in a memory cgroup of memoryLimit bytes
// unless it is 0, and waits until it is ready.
func startWebhook(ctx context.Context, binary, certDir, gogc string, memoryLimit int64) (*webhook, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	health, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(binary, "--cert-dir="+certDir, "--host=127.0.0.1", fmt.Sprintf("--port=%d", port),
		"--init-image=secretfetch.local/init-fetch:dev", "--default-region=us-east-1", "--metrics-bind-address=0",
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", health), "--shutdown-delay=0", "--log-level=error")
	cmd.Env = append(os.Environ(), "GOGC="+gogc, "GOMEMLIMIT=200MiB")
	// Its log lines (one per refused request) would drown the figures.
	cmd.Stderr = nil
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", binary, err)
	}
	w := &webhook{cmd: cmd, addr: fmt.Sprintf("127.0.0.1:%d", port), done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(w.done) }()
	if memoryLimit > 0 {
		cg, err := newMemoryCgroup(memoryLimit)
		if err == nil {
			err = cg.add(cmd.Process.Pid)
			w.cgroup = cg
		}
		if err != nil {
			w.stop()
			return nil, err
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", health))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return w, nil
			}
		}
		select {
		case <-w.done:
			return nil, fmt.Errorf("%s exited before it was ready", binary)
		case <-ctx.Done():
			w.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			w.stop()
			return nil, errors.New("the webhook was not ready within 30s")
		}
	}
}

// stop sends SIGTERM to the webhook it started, and SIGKILL after 10 s,
// then removes its cgroup.
func (w *webhook) stop() {
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.done:
	case <-time.After(10 * time.Second):
		_ = w.cmd.Process.Kill()
		<-w.done
	}
	if w.cgroup != nil {
		if err := w.cgroup.remove(); err != nil {
			fmt.Fprintln(os.Stderr, "webhook-abuse: removing the memory cgroup:", err)
		}
	}
}

// sampleRSS records the largest VmRSS until the webhook exits: VmHWM is
// gone with a webhook that was killed.
func (w *webhook) sampleRSS(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-w.done:
			return
		case <-t.C:
			if rss := int64(w.status("VmRSS")); rss > w.maxRSS.Load() {
				w.maxRSS.Store(rss)
			}
		}
	}
}

// status reads a kB field of /proc/PID/status, such as VmRSS or VmHWM.
func (w *webhook) status(field string) int {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(w.cmd.Process.Pid), "status"))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return n
		}
	}
	return 0
}

// cpu is the webhook's user and system CPU time so far, from
// /proc/PID/stat (in clock ticks of 10 ms).
func (w *webhook) cpu() time.Duration {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(w.cmd.Process.Pid), "stat"))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.Atoi(f[11])
	stime, _ := strconv.Atoi(f[12])
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// stallLoop, until ctx ends, opens an HTTP/1.1 connection, sends the headers
// and all of a body but its last byte, and waits for the server to answer or
// close; then it starts again.
func stallLoop(ctx context.Context, addr string, conf *tls.Config, junk []byte, length int, pause time.Duration, t *tally) {
	for ctx.Err() == nil {
		t.add(stall(ctx, addr, conf, junk, length))
		sleep(ctx, pause)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func stall(ctx context.Context, addr string, conf *tls.Config, junk []byte, length int) string {
	conn, outcome := dialHTTP1(ctx, addr, conf)
	if conn == nil {
		return outcome
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	fmt.Fprintf(conn, "POST /mutate-v1-pod HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", length)
	// The write fails once the server gives up and closes; read its answer
	// either way.
	_, _ = conn.Write(junk)
	resp, outcome := readAnswer(ctx, conn)
	if resp == nil {
		return outcome
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	return answerOutcome(resp.StatusCode, b)
}

// headerLoop, until ctx ends, opens an HTTP/1.1 connection, sends size
// bytes of headers, in lines of up to line bytes, without the blank line
// that would end them, and waits for the server to answer or close; then it
// starts again.
func headerLoop(ctx context.Context, addr string, conf *tls.Config, size, line int, pause time.Duration, t *tally) {
	for ctx.Err() == nil {
		t.add(holdHeaders(ctx, addr, conf, size, line))
		sleep(ctx, pause)
	}
}

func holdHeaders(ctx context.Context, addr string, conf *tls.Config, size, line int) string {
	conn, outcome := dialHTTP1(ctx, addr, conf)
	if conn == nil {
		return outcome
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	go func() {
		// The writes block once the server stops reading, and fail once
		// it closes.
		w := bufio.NewWriterSize(conn, 64<<10)
		fmt.Fprintf(w, "POST /mutate-v1-pod HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n")
		pad := strings.Repeat("a", line)
		for i, sent := 0, 0; sent < size; i++ {
			n, err := fmt.Fprintf(w, "X-Pad-%05d: %s\r\n", i, pad[:min(len(pad), max(size-sent-15, 1))])
			if err != nil {
				return
			}
			sent += n
		}
		_ = w.Flush()
	}()
	resp, outcome := readAnswer(ctx, conn)
	if resp == nil {
		return outcome
	}
	resp.Body.Close()
	return fmt.Sprintf("HTTP %d", resp.StatusCode)
}

// dialHTTP1 opens a TLS connection that offers HTTP/1.1 alone, or returns
// nil and the outcome to count: "held to the end" when ctx ended first.
func dialHTTP1(ctx context.Context, addr string, conf *tls.Config) (net.Conn, string) {
	d := tls.Dialer{Config: conf.Clone()}
	d.Config.NextProtos = []string{"http/1.1"}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, "held to the end"
		}
		return nil, "dial failed"
	}
	return conn, ""
}

// readAnswer reads the server's answer on conn, or returns nil and the
// outcome to count when there is none.
func readAnswer(ctx context.Context, conn net.Conn) (*http.Response, string) {
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		if ctx.Err() != nil {
			return nil, "held to the end"
		}
		return nil, "closed without an answer"
	}
	return resp, ""
}

// lastPart is the last part of an error's message, what went wrong without
// the context around it ("EOF", "connection reset by peer").
func lastPart(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		return msg[i+2:]
	}
	return msg
}

// answerOutcome names an answer by its HTTP status and the review's code.
func answerOutcome(status int, body []byte) string {
	code := ""
	if i := bytes.Index(body, []byte(`"code":`)); i >= 0 {
		rest := body[i+len(`"code":`):]
		if j := bytes.IndexAny(rest, ",}"); j > 0 {
			code = " review " + string(rest[:j])
		}
	}
	return fmt.Sprintf("HTTP %d%s", status, code)
}

// stalledBody yields all of a body but its last byte, then blocks until ctx
// ends.
type stalledBody struct {
	ctx  context.Context
	rest []byte
}

func (b *stalledBody) Read(p []byte) (int, error) {
	if len(b.rest) > 0 {
		n := copy(p, b.rest)
		b.rest = b.rest[n:]
		return n, nil
	}
	<-b.ctx.Done()
	return 0, b.ctx.Err()
}

// negotiatesH2 reports whether the server picks h2 in ALPN.
func negotiatesH2(addr string, conf *tls.Config) (bool, error) {
	c := conf.Clone()
	c.NextProtos = []string{"h2", "http/1.1"}
	conn, err := tls.Dial("tcp", addr, c)
	if err != nil {
		return false, fmt.Errorf("checking ALPN: %w", err)
	}
	defer conn.Close()
	return conn.ConnectionState().NegotiatedProtocol == "h2", nil
}

var (
	h2Once      sync.Once
	h2Transport *http.Transport
)

// streamLoop sends, until ctx ends, one stalled request at a time as an
// HTTP/2 stream; every streamLoop shares one connection.
func streamLoop(ctx context.Context, addr string, conf *tls.Config, junk []byte, length int, pause time.Duration, t *tally) {
	h2Once.Do(func() {
		var p http.Protocols
		p.SetHTTP2(true)
		h2Transport = &http.Transport{TLSClientConfig: conf.Clone(), Protocols: &p, MaxConnsPerHost: 1, ForceAttemptHTTP2: true}
	})
	client := &http.Client{Transport: h2Transport}
	for ctx.Err() == nil {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+addr+"/mutate-v1-pod", &stalledBody{ctx: ctx, rest: junk})
		if err != nil {
			t.add("bad request")
			return
		}
		req.ContentLength = int64(length)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				t.add("held to the end")
			} else {
				t.add("failed: " + err.Error())
			}
			continue
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		t.add(answerOutcome(resp.StatusCode, b))
		sleep(ctx, pause)
	}
}

// normalReview sends the normal review over a fresh HTTP/1.1 connection, as
// the API server would after an idle spell, and times it.
func normalReview(ctx context.Context, addr string, conf *tls.Config, review []byte) probe {
	tr := &http.Transport{TLSClientConfig: conf.Clone(), DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+addr+"/mutate-v1-pod", bytes.NewReader(review))
	if err != nil {
		return probe{outcome: "bad request"}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return probe{latency: time.Since(start), outcome: "failed: " + lastPart(err)}
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	lat := time.Since(start)
	if err == nil && resp.StatusCode == http.StatusOK && bytes.Contains(b, []byte(`"allowed":true`)) && bytes.Contains(b, []byte(`"patch":`)) {
		return probe{latency: lat, outcome: "injected"}
	}
	return probe{latency: lat, outcome: answerOutcome(resp.StatusCode, b)}
}
