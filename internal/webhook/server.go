package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
)

// Bounds on what a client holds before its request reaches the guard: the
// TLS handshake and the headers. controller-runtime's webhook server allows
// 1 MiB of headers for 32 s on any number of connections, and offers no way
// to change either, so 100 connections each sending most of 1 MiB of
// headers took the webhook past its 256 MiB limit. The webhook serves with
// its own http.Server instead.
const (
	// maxHeaderBytes bounds a request's headers. The API server sends a few
	// hundred bytes of them (content type and length, user agent, trace
	// context); net/http reads at most 4 KiB past this before it answers
	// 431 and closes the connection.
	maxHeaderBytes = 16 << 10
	// readHeaderTimeout bounds the TLS handshake (net/http uses it for that
	// too) and the headers of each request, from their first byte. The API
	// server sends them at once; and after the webhook's timeoutSeconds
	// (5 s in manifests/base) it has given up on the request anyway.
	readHeaderTimeout = 5 * time.Second
	// idleTimeout closes a keep-alive connection with no request for that
	// long. It is longer than the idle timeout of the API server's client
	// (90 s, that of Go's default transport), so that the client, which
	// knows when it will send, closes first: a server closing an idle
	// connection just as a request is sent on it fails that request.
	idleTimeout = 2 * time.Minute
	// answerTimeout is how long, past the body's deadline, a request may
	// take to be decided and answered before its connection is closed: a
	// client that never reads its answers would otherwise hold a
	// connection, busy and so never evicted, for ever. The API server waits
	// at most 30 s (the largest timeoutSeconds) for an answer.
	answerTimeout = 30 * time.Second
)

// DefaultMaxConnections is the default of --max-connections. Each API
// server keeps a pool of connections to the webhook (Go's transport keeps
// up to 100 idle ones per host, far more than its traffic needs), spread
// over the replicas by the Service; the guard serves at most 72 requests
// at once and queues as many. A connection holds at most about 100 KiB
// (16 KiB of headers, TLS buffers, its goroutine), so 256 of them hold
// at most about 25 MiB.
const DefaultMaxConnections = 256

// Reasons of the closed-connections counter.
const (
	closedEvicted = "evicted" // closing after an error, idle, or in its handshake or headers when a new one came past the cap
	closedRefused = "refused" // every connection was serving a request when a new one came past the cap
)

// webhookServer is the webhook's HTTPS server.
type webhookServer struct {
	srv     *http.Server
	ln      net.Listener
	watcher *certwatcher.CertWatcher
	serving atomic.Bool
}

type serverOptions struct {
	addr           string
	certDir        string
	maxConnections int
	bodyTimeout    time.Duration
	headerTimeout  time.Duration
	// base is the context of every request: it carries the logger, and does
	// not end when the server shuts down, so that the requests in flight
	// are finished rather than refused (see Run).
	base   context.Context
	log    logr.Logger
	closed *prometheus.CounterVec
}

// newWebhookServer loads the serving certificate and listens on o.addr.
func newWebhookServer(handler http.Handler, o serverOptions) (*webhookServer, error) {
	if o.maxConnections < 1 {
		return nil, fmt.Errorf("--max-connections is %d; it must be at least 1", o.maxConnections)
	}
	// certwatcher reloads tls.crt and tls.key when they change, so a
	// renewed certificate needs no restart.
	watcher, err := certwatcher.New(filepath.Join(o.certDir, "tls.crt"), filepath.Join(o.certDir, "tls.key"))
	if err != nil {
		return nil, fmt.Errorf("loading the serving certificate from %s: %w", o.certDir, err)
	}
	tcp, err := net.Listen("tcp", o.addr)
	if err != nil {
		return nil, fmt.Errorf("listening for webhooks on %s: %w", o.addr, err)
	}
	limited := newConnLimiter(tcp, o.maxConnections, o.closed)
	handler = limited.serving(handler)
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: watcher.GetCertificate}
	http11Only(tlsConf)
	// HTTP/1.1 alone, whatever a client offers (see http11Only).
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	srv := &http.Server{
		Handler:           handler,
		Protocols:         &protocols,
		MaxHeaderBytes:    maxHeaderBytes,
		ReadHeaderTimeout: o.headerTimeout,
		IdleTimeout:       idleTimeout,
		WriteTimeout:      o.bodyTimeout + answerTimeout,
		BaseContext:       func(net.Listener) context.Context { return o.base },
		ConnContext:       limited.connContext,
		ConnState:         limited.track,
		// A handshake that fails or a client that goes away is not the
		// webhook's fault; a flood of them must not flood the log.
		ErrorLog: newDebugLog(o.log),
	}
	return &webhookServer{srv: srv, ln: tls.NewListener(limited, tlsConf), watcher: watcher}, nil
}

// serve serves until ctx ends, then shuts down gracefully: it stops
// accepting connections, closes the idle ones, and returns once every
// request in flight has been answered, or after a minute.
func (s *webhookServer) serve(ctx context.Context, log logr.Logger) error {
	watchCtx, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	go func() {
		if err := s.watcher.Start(watchCtx); err != nil {
			log.Error(err, "watching the serving certificate")
		}
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := s.srv.Shutdown(sctx); err != nil {
			log.Error(err, "shutting down the webhook server")
		}
	}()
	s.serving.Store(true)
	err := s.srv.Serve(s.ln)
	s.serving.Store(false)
	if errors.Is(err, http.ErrServerClosed) {
		<-done
		return nil
	}
	_ = s.ln.Close()
	return err
}

// ready is the readiness of the webhook server: it is accepting
// connections. It does not dial the server, which would take one of its
// connections.
func (s *webhookServer) ready(*http.Request) error {
	if !s.serving.Load() {
		return errors.New("the webhook server is not serving")
	}
	return nil
}

// connLimiter caps the open connections of a listener, counted from the
// moment they are accepted, so TLS handshakes, headers being sent and idle
// keep-alive connections are all included. At the cap, a new connection
// takes the place of another, in this order: one that is closing anyway
// (net/http keeps a connection half a second after an error answer such as
// 431), then an idle keep-alive one, then one still in its handshake or
// first headers; the oldest first in each. The API server sends a request
// at once, and reopens a connection it finds closed, so the one closed is a
// slow or hostile client's, or costs a handshake. A connection whose
// request is being handled is never closed (the guard bounds those, and
// answerTimeout their time); when every one is, the new connection is
// closed at once.
type connLimiter struct {
	net.Listener
	max    int
	closed *prometheus.CounterVec

	mu    sync.Mutex
	conns map[*limitedConn]struct{}
}

// limitedConn is a connection counted by a connLimiter.
type limitedConn struct {
	net.Conn
	l         *connLimiter
	closeOnce sync.Once
	// guarded by l.mu
	busy  bool           // a request is being handled on it
	state http.ConnState // as net/http last reported it
	since time.Time      // when it was accepted or its state last changed
}

func newConnLimiter(ln net.Listener, n int, closed *prometheus.CounterVec) *connLimiter {
	return &connLimiter{Listener: ln, max: n, closed: closed, conns: map[*limitedConn]struct{}{}}
}

func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		lc := &limitedConn{Conn: c, l: l, since: time.Now()}
		admitted, evicted := l.admit(lc)
		if evicted != nil {
			l.closed.WithLabelValues(closedEvicted).Inc()
			// Its server goroutine, reading, fails and closes it.
			_ = evicted.Conn.Close()
		}
		if admitted {
			return lc, nil
		}
		l.closed.WithLabelValues(closedRefused).Inc()
		_ = c.Close()
	}
}

// admit counts c, making room, if the limiter is full, by evicting the
// connection that evictFirst puts first. It reports false when every
// connection is busy.
func (l *connLimiter) admit(c *limitedConn) (admitted bool, evicted *limitedConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.conns) >= l.max {
		for o := range l.conns {
			if !o.busy && (evicted == nil || evictFirst(o, evicted)) {
				evicted = o
			}
		}
		if evicted == nil {
			return false, nil
		}
		delete(l.conns, evicted)
	}
	l.conns[c] = struct{}{}
	return true, evicted
}

// evictFirst reports whether a is to be evicted before b (neither busy).
func evictFirst(a, b *limitedConn) bool {
	if ra, rb := evictRank(a.state), evictRank(b.state); ra != rb {
		return ra < rb
	}
	return a.since.Before(b.since)
}

// evictRank orders the states of connections that are not busy. Active and
// not busy is a connection closing after an error answer (or, for a few
// microseconds, one whose handler is about to run: since is then the
// newest of all).
func evictRank(s http.ConnState) int {
	switch s {
	case http.StateActive:
		return 0
	case http.StateIdle:
		return 1
	default: // StateNew: in its handshake or first headers
		return 2
	}
}

// connKey is the context key of a request's *limitedConn.
type connKey struct{}

// connContext puts a connection in the context of its requests
// (http.Server's ConnContext), for serving.
func (l *connLimiter) connContext(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if lc, ok := c.(*limitedConn); ok {
		return context.WithValue(ctx, connKey{}, lc)
	}
	return ctx
}

// serving marks a request's connection busy while next handles it. Busy
// means handled, not net/http's StateActive, which also covers the half
// second a connection lingers after an error answer such as 431: under a
// flood of those, the lingering connections would be the ones kept and a
// new client's the one closed.
func (l *connLimiter) serving(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lc, ok := r.Context().Value(connKey{}).(*limitedConn)
		if ok {
			l.setBusy(lc, true)
			defer l.setBusy(lc, false)
		}
		next.ServeHTTP(w, r)
	})
}

func (l *connLimiter) setBusy(c *limitedConn, busy bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c.busy = busy
	if !busy {
		c.since = time.Now()
	}
}

// track follows the state of the server's connections, and forgets them
// as they close (http.Server's ConnState).
func (l *connLimiter) track(c net.Conn, state http.ConnState) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	lc, ok := c.(*limitedConn)
	if !ok {
		return
	}
	switch state {
	case http.StateHijacked, http.StateClosed:
		lc.forget()
	default:
		l.mu.Lock()
		lc.state, lc.since = state, time.Now()
		l.mu.Unlock()
	}
}

func (c *limitedConn) Close() error {
	c.forget()
	return c.Conn.Close()
}

// forget stops counting c.
func (c *limitedConn) forget() {
	c.closeOnce.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
}

// open is the number of connections counted.
func (l *connLimiter) open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// registerClosed registers secretfetch_webhook_closed_connections_total on
// reg, or returns the one already there.
func registerClosed(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "secretfetch_webhook_closed_connections_total",
		Help: "Connections the webhook server closed because --max-connections were open: evicted (one closing after an error, idle, " +
			"or in its handshake or headers, to make room for a new one) and refused (a new one, when every connection was serving a request).",
	}, []string{"reason"})
	c, err := registerOrGet(reg, c)
	if err != nil {
		return nil, fmt.Errorf("registering the closed connections counter: %w", err)
	}
	c.WithLabelValues(closedEvicted)
	c.WithLabelValues(closedRefused)
	return c, nil
}

// newDebugLog is a standard logger for net/http's ErrorLog that writes to
// log at V(1).
func newDebugLog(log logr.Logger) *stdlog.Logger { return stdlog.New(debugWriter{log}, "", 0) }

// debugWriter writes net/http's own log lines (failed handshakes, errors
// reading a request) to a logger at V(1).
type debugWriter struct{ log logr.Logger }

func (w debugWriter) Write(p []byte) (int, error) {
	w.log.V(1).Info(string(trimNewline(p)))
	return len(p), nil
}

func trimNewline(p []byte) []byte {
	if n := len(p); n > 0 && p[n-1] == '\n' {
		return p[:n-1]
	}
	return p
}

// registerOrGet registers c on reg, or returns the collector of its kind
// already there (tests start Run more than once in a process).
func registerOrGet[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}
