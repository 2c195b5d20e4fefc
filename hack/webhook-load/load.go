package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type config struct {
	url         string
	caFile      string
	reviewFile  string
	connections int
	duration    time.Duration
	warmup      time.Duration
	rate        float64
	// serverPID, when set, is the webhook's process: its CPU time over the
	// measured window is reported per request (from /proc/PID/stat).
	serverPID int
}

const (
	// requestTimeout bounds one request, like the API server's webhook
	// timeout (the manifests use 5 s), with room to see slow answers.
	requestTimeout = 10 * time.Second
	// drain bounds how long open-loop workers go on sending requests that
	// were scheduled inside the window but are still queued at its end.
	drain = 5 * time.Second
	// uidPlaceholder replaces the review's request.uid; each request then
	// writes its own UID, of the same length, at the same offset.
	uidPlaceholder = "ffffffff-ffff-4fff-bfff-ffffffffffff"
)

// summary is the outcome of a run. Only requests that started inside the
// measured window count; warm-up requests are sent but not recorded.
type summary struct {
	window time.Duration
	// elapsed runs from the start of the window to the last answer of a
	// counted request: more than window when answers come late, as when an
	// open loop queues up behind a server that cannot keep the rate.
	elapsed     time.Duration
	requests    int // answered or failed
	errors      int
	patched     int // allowed with a JSON patch
	missed      int // open loop: scheduled but never started
	errorKinds  map[string]int
	firstError  string
	latencies   []time.Duration // sorted
	connections int
	rate        float64
	warmup      time.Duration
	url         string
	// CPU time used during the measured window by this process and, when
	// known, by the server; zero when not measured.
	selfCPU, serverCPU time.Duration
	serverPID          int
}

func run(ctx context.Context, c config, stdout io.Writer) error {
	s, err := load(ctx, c)
	if err != nil {
		return err
	}
	s.print(stdout)
	return nil
}

func load(ctx context.Context, c config) (*summary, error) {
	if c.connections <= 0 {
		return nil, fmt.Errorf("--connections must be positive, got %d", c.connections)
	}
	if c.duration <= 0 || c.warmup < 0 {
		return nil, fmt.Errorf("--duration must be positive and --warmup not negative, got %v and %v", c.duration, c.warmup)
	}
	if c.rate < 0 || math.IsInf(c.rate, 0) || math.IsNaN(c.rate) {
		return nil, fmt.Errorf("--rate must be a non-negative number, got %v", c.rate)
	}
	u, err := loopbackURL(c.url)
	if err != nil {
		return nil, err
	}
	if c.caFile == "" {
		return nil, errors.New("--ca is required")
	}
	pem, err := os.ReadFile(c.caFile)
	if err != nil {
		return nil, fmt.Errorf("reading the CA bundle: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("reading the CA bundle: no PEM certificate in %s", c.caFile)
	}
	body, uidAt, err := prepareReview(c.reviewFile)
	if err != nil {
		return nil, err
	}

	start := time.Now()
	from := start.Add(c.warmup)
	end := from.Add(c.duration)

	var slots chan time.Time
	var missed atomic.Int64
	if c.rate > 0 {
		slots = schedule(ctx, c.rate, start, end, &missed)
	}

	// CPU time from the start of the window until the last answer: the
	// generator's own, and the server's when its PID is known.
	var cpuStart cpuSample
	cpuDone := make(chan struct{})
	go func() {
		defer close(cpuDone)
		if sleepUntil(ctx, from) {
			cpuStart = sampleCPU(c.serverPID)
		}
	}()

	workers := make([]*worker, c.connections)
	var wg sync.WaitGroup
	for i := range workers {
		w := newWorker(i, u, roots, body, uidAt)
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer w.close()
			if slots == nil {
				w.closedLoop(ctx, from, end)
			} else {
				w.openLoop(ctx, slots, from, end, &missed)
			}
		}()
	}
	wg.Wait()
	<-cpuDone
	cpuEnd := sampleCPU(c.serverPID)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("interrupted: %w", err)
	}

	s := &summary{
		window: c.duration, elapsed: c.duration, missed: int(missed.Load()), errorKinds: map[string]int{},
		connections: c.connections, rate: c.rate, warmup: c.warmup, url: u.String(),
		serverPID: c.serverPID,
	}
	if cpuStart.ok && cpuEnd.ok {
		s.selfCPU = cpuEnd.self - cpuStart.self
		if c.serverPID > 0 && cpuStart.serverOK && cpuEnd.serverOK {
			s.serverCPU = cpuEnd.server - cpuStart.server
		}
	}
	for _, w := range workers {
		s.requests += w.requests
		s.errors += w.errors
		s.patched += w.patched
		for k, n := range w.errorKinds {
			s.errorKinds[k] += n
		}
		if s.firstError == "" {
			s.firstError = w.firstError
		}
		s.latencies = append(s.latencies, w.latencies...)
		if d := w.lastDone.Sub(from); d > s.elapsed {
			s.elapsed = d
		}
	}
	slices.Sort(s.latencies)
	return s, nil
}

// loopbackURL parses raw and refuses anything but HTTPS to a loopback
// address: this tool must never load a machine other than this one.
func loopbackURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("parsing --url: %w", err)
	}
	if u.Scheme != "https" {
		return nil, fmt.Errorf("--url %q: the scheme must be https", raw)
	}
	host := u.Hostname()
	if host == "localhost" {
		return u, nil // the dialer checks what it resolves to
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("--url %q: refusing host %q, only loopback addresses (127.0.0.0/8, ::1, localhost) are allowed", raw, host)
	}
	return u, nil
}

// dialLoopback dials and then refuses the connection unless its peer is a
// loopback address, whatever the name resolved to.
func dialLoopback(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if ta, ok := conn.RemoteAddr().(*net.TCPAddr); !ok || !ta.IP.IsLoopback() {
		conn.Close()
		return nil, fmt.Errorf("refusing to talk to %v: not a loopback address", conn.RemoteAddr())
	}
	return conn, nil
}

// prepareReview reads an AdmissionReview, puts a placeholder in
// request.uid, and returns the compact JSON and the placeholder's offset.
func prepareReview(path string) ([]byte, int, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, fmt.Errorf("reading the AdmissionReview: %w", err)
	}
	var review map[string]any
	if err := json.Unmarshal(raw, &review); err != nil {
		return nil, 0, fmt.Errorf("decoding the AdmissionReview %s: %w", path, err)
	}
	req, ok := review["request"].(map[string]any)
	if !ok || review["kind"] != "AdmissionReview" {
		return nil, 0, fmt.Errorf("%s is not an AdmissionReview with a request", path)
	}
	req["uid"] = uidPlaceholder
	body, err := json.Marshal(review)
	if err != nil {
		return nil, 0, fmt.Errorf("encoding the AdmissionReview: %w", err)
	}
	if n := bytes.Count(body, []byte(uidPlaceholder)); n != 1 {
		return nil, 0, fmt.Errorf("%s: the UID placeholder appears %d times, want once", path, n)
	}
	return body, bytes.Index(body, []byte(uidPlaceholder)), nil
}

// schedule sends the start times of an open-loop run: rate per second from
// start until end. The channel holds every slot of the run, so a slow server
// makes the queue, and the measured latency, grow, instead of silently
// lowering the rate.
func schedule(ctx context.Context, rate float64, start, end time.Time, missed *atomic.Int64) chan time.Time {
	total := int(rate*end.Sub(start).Seconds()) + 1
	slots := make(chan time.Time, total)
	interval := time.Duration(float64(time.Second) / rate)
	go func() {
		defer close(slots)
		for i := 0; ; {
			now := time.Now()
			// Release every slot that is due; sleeping once per slot would
			// cost more than the requests at high rates.
			for ; ; i++ {
				t := start.Add(time.Duration(i) * interval)
				if !t.Before(end) {
					return
				}
				if t.After(now) {
					break
				}
				select {
				case slots <- t:
				default:
					missed.Add(1)
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Until(start.Add(time.Duration(i) * interval))):
			}
		}
	}()
	return slots
}

// worker owns one keep-alive HTTP/1.1 connection and its own statistics.
// It writes each request whole and reads the answer on the same goroutine,
// with no http.Transport in between: the generator shares the CPUs with the
// webhook, and the Transport's two goroutines per connection, and the
// hand-offs between them, cost it as much CPU per request as TLS did.
type worker struct {
	id        int
	addr      string // host:port
	tlsConfig *tls.Config
	conn      *tls.Conn // nil until dialled, and after an error
	br        *bufio.Reader
	// request is the whole HTTP request, headers and body; the UID sits at
	// uidAt.
	request []byte
	uidAt   int
	seq     uint64
	resp    bytes.Buffer

	requests, errors, patched int
	errorKinds                map[string]int
	firstError                string
	latencies                 []time.Duration
	lastDone                  time.Time // when the last counted answer came
}

func newWorker(id int, u *url.URL, roots *x509.CertPool, body []byte, uidAt int) *worker {
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: %d\r\n\r\n",
		u.RequestURI(), u.Host, len(body))
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "443")
	}
	return &worker{
		id:   id,
		addr: addr,
		tlsConfig: &tls.Config{
			RootCAs:    roots,
			ServerName: u.Hostname(),
			MinVersion: tls.VersionTLS12,
			NextProtos: []string{"http/1.1"},
		},
		request:    append([]byte(head), body...),
		uidAt:      len(head) + uidAt,
		errorKinds: map[string]int{},
	}
}

// close drops the connection; the next request dials a new one.
func (w *worker) close() {
	if w.conn != nil {
		w.conn.Close()
		w.conn, w.br = nil, nil
	}
}

func (w *worker) dial(ctx context.Context) error {
	raw, err := dialLoopback(ctx, "tcp", w.addr)
	if err != nil {
		return err
	}
	conn := tls.Client(raw, w.tlsConfig)
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return fmt.Errorf("TLS handshake: %w", err)
	}
	// A review is about 8 KB and an answer about 4 KB: one read of a
	// large buffer takes a whole answer.
	w.conn, w.br = conn, bufio.NewReaderSize(conn, 64<<10)
	return nil
}

func (w *worker) closedLoop(ctx context.Context, from, end time.Time) {
	for ctx.Err() == nil {
		t := time.Now()
		if !t.Before(end) {
			return
		}
		w.send(ctx, t, !t.Before(from))
	}
}

func (w *worker) openLoop(ctx context.Context, slots <-chan time.Time, from, end time.Time, missed *atomic.Int64) {
	for t := range slots {
		if ctx.Err() != nil || time.Now().After(end.Add(drain)) {
			missed.Add(1)
			continue
		}
		w.send(ctx, t, !t.Before(from))
	}
}

// reviewResponse is the part of the answer that is checked. The patch stays
// raw: decoding it would spend the CPU that the webhook is measured on.
type reviewResponse struct {
	Response *struct {
		UID     string          `json:"uid"`
		Allowed bool            `json:"allowed"`
		Patch   json.RawMessage `json:"patch"`
		Status  *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"status"`
	} `json:"response"`
}

// send makes one request; latency counts from started, which in an open
// loop is the scheduled start.
func (w *worker) send(ctx context.Context, started time.Time, record bool) {
	w.seq++
	uid := formatUID(w.request[w.uidAt:w.uidAt+len(uidPlaceholder)], uint32(w.id), w.seq)
	kind, detail, patched := w.roundTrip(ctx, uid)
	if !record {
		return
	}
	w.lastDone = time.Now()
	w.latencies = append(w.latencies, w.lastDone.Sub(started))
	w.requests++
	if kind != "" {
		w.errors++
		w.errorKinds[kind]++
		if w.firstError == "" {
			w.firstError = kind + ": " + detail
		}
		return
	}
	if patched {
		w.patched++
	}
}

func (w *worker) roundTrip(ctx context.Context, uid string) (kind, detail string, patched bool) {
	if w.conn == nil {
		if err := w.dial(ctx); err != nil {
			return "transport", err.Error(), false
		}
	}
	resp, err := w.exchange()
	if err != nil {
		w.close()
		return "transport", err.Error(), false
	}
	if resp.Close {
		w.close()
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("HTTP %d", resp.StatusCode), truncate(w.resp.String()), false
	}
	var r reviewResponse
	if err := json.Unmarshal(w.resp.Bytes(), &r); err != nil {
		return "decode", err.Error(), false
	}
	switch {
	case r.Response == nil:
		return "no response", truncate(w.resp.String()), false
	case r.Response.UID != uid:
		return "uid mismatch", fmt.Sprintf("sent %s, got %s", uid, r.Response.UID), false
	case !r.Response.Allowed:
		msg := ""
		if r.Response.Status != nil {
			msg = fmt.Sprintf("code %d: %s", r.Response.Status.Code, r.Response.Status.Message)
		}
		return "denied", truncate(msg), false
	}
	return "", "", len(r.Response.Patch) > 0 && string(r.Response.Patch) != "null"
}

// exchange writes the request and reads the answer's body into w.resp.
func (w *worker) exchange() (*http.Response, error) {
	if err := w.conn.SetDeadline(time.Now().Add(requestTimeout)); err != nil {
		return nil, err
	}
	if _, err := w.conn.Write(w.request); err != nil {
		return nil, fmt.Errorf("writing the request: %w", err)
	}
	resp, err := http.ReadResponse(w.br, nil)
	if err != nil {
		return nil, fmt.Errorf("reading the answer: %w", err)
	}
	w.resp.Reset()
	_, err = w.resp.ReadFrom(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("reading the answer's body: %w", err)
	}
	return resp, nil
}

// formatUID writes a UUID-shaped, per-request UID over dst (36 bytes) and
// returns it: the worker in the first group, the sequence in the last.
func formatUID(dst []byte, worker uint32, seq uint64) string {
	const hexdigits = "0123456789abcdef"
	put := func(b []byte, v uint64) {
		for i := len(b) - 1; i >= 0; i-- {
			b[i] = hexdigits[v&0xf]
			v >>= 4
		}
	}
	copy(dst, "00000000-0000-4000-8000-000000000000")
	put(dst[0:8], uint64(worker))
	put(dst[24:36], seq)
	return string(dst)
}

func truncate(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}

// percentile returns the nearest-rank q-quantile of sorted.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func (s *summary) throughput() float64 { return float64(s.requests) / s.elapsed.Seconds() }

func (s *summary) print(w io.Writer) {
	mode := "closed loop (each connection sends when its previous answer arrives)"
	if s.rate > 0 {
		mode = fmt.Sprintf("open loop at %.0f req/s (latency from the scheduled start)", s.rate)
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }
	fmt.Fprintf(w, "webhook-load: POST %s\n", s.url)
	fmt.Fprintf(w, "  connections %d, %s\n", s.connections, mode)
	fmt.Fprintf(w, "  %v warm-up (not counted), requests started in a %v window", s.warmup, s.window)
	if late := s.elapsed - s.window; late > 100*time.Millisecond {
		fmt.Fprintf(w, ", answered over %.1fs", s.elapsed.Seconds())
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  requests  %d  (%.1f req/s)  errors %d  patched %d", s.requests, s.throughput(), s.errors, s.patched)
	if s.missed > 0 {
		fmt.Fprintf(w, "  never sent %d", s.missed)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  latency   p50 %s  p90 %s  p99 %s  max %s\n",
		ms(percentile(s.latencies, 0.50)), ms(percentile(s.latencies, 0.90)),
		ms(percentile(s.latencies, 0.99)), ms(percentile(s.latencies, 1)))
	if s.selfCPU > 0 && s.requests > 0 {
		perReq := func(d time.Duration) string {
			return fmt.Sprintf("%.3f ms/request (%.2f CPUs)", float64(d)/float64(time.Millisecond)/float64(s.requests), d.Seconds()/s.elapsed.Seconds())
		}
		fmt.Fprintf(w, "  CPU       generator %s", perReq(s.selfCPU))
		if s.serverCPU > 0 {
			fmt.Fprintf(w, ", webhook (pid %d) %s", s.serverPID, perReq(s.serverCPU))
		}
		fmt.Fprintln(w)
	}
	if s.errors > 0 {
		kinds := make([]string, 0, len(s.errorKinds))
		for k, n := range s.errorKinds {
			kinds = append(kinds, fmt.Sprintf("%s: %d", k, n))
		}
		sort.Strings(kinds)
		fmt.Fprintf(w, "  errors by kind: %s\n  first error: %s\n", strings.Join(kinds, ", "), s.firstError)
	}
}

// cpuSample is the CPU time (user + system) of this process and, when
// serverOK, of the server process.
type cpuSample struct {
	self     time.Duration
	server   time.Duration
	ok       bool
	serverOK bool
}

func sampleCPU(serverPID int) cpuSample {
	var s cpuSample
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		s.ok = true
	}
	if serverPID > 0 {
		if d, err := procCPU(serverPID); err == nil {
			s.server, s.serverOK = d, true
		}
	}
	return s
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// procCPU reads a process's user and system time from /proc/PID/stat.
func procCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces;
	// the fields after the last ')' start with field 3 (state).
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, fmt.Errorf("parsing /proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("parsing /proc/%d/stat: %d fields", pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("parsing /proc/%d/stat: %w", pid, err)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// sleepUntil waits for t; false if ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}
