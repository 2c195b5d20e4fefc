package webhook

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/secretfetch/secretfetch/internal/mutate"
)

// closedWithin reports whether the server closes conn (a read fails other
// than by its deadline) within d, reading and discarding what it sends.
func closedWithin(conn net.Conn, d time.Duration) bool {
	_ = conn.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, conn)
	return !errors.Is(err, os.ErrDeadlineExceeded)
}

// TestRunHeaderLimits: a client holds little before its request reaches the
// guard. Headers past 16 KiB are refused with 431 and the connection closed,
// though the client would send 1 MiB of them; headers sent too slowly, or a
// TLS handshake never made, are cut off after the header timeout.
func TestRunHeaderLimits(t *testing.T) {
	cfg, pool := testConfig(t)
	cfg.headerTimeout = 500 * time.Millisecond
	s := start(t, cfg, pool)
	addr := fmt.Sprintf("127.0.0.1:%d", cfg.Port)
	dial := func(t *testing.T) *tls.Conn {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	requestLine := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n", mutate.Path)

	t.Run("1 MiB of headers", func(t *testing.T) {
		conn := dial(t)
		go func() {
			// The writes fail once the server has answered and closed.
			if _, err := io.WriteString(conn, requestLine); err != nil {
				return
			}
			pad := strings.Repeat("a", 1000)
			for i := range 1 << 10 {
				if _, err := fmt.Fprintf(conn, "X-Pad-%04d: %s\r\n", i, pad); err != nil {
					return
				}
			}
		}()
		_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("reading the answer: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("HTTP %d, want 431", resp.StatusCode)
		}
		if !closedWithin(conn, 20*time.Second) {
			t.Error("the connection is still open after the 431")
		}
	})
	t.Run("headers of the largest size", func(t *testing.T) {
		// Just under the limit, with room for the request line and
		// net/http's count of the blank line.
		conn := dial(t)
		body := review(t)
		fmt.Fprintf(conn, "%sContent-Length: %d\r\nX-Pad: %s\r\n\r\n%s", requestLine, len(body),
			strings.Repeat("a", maxHeaderBytes-len(requestLine)-100), body)
		_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		readInjected(t, conn)
	})
	t.Run("headers sent slowly", func(t *testing.T) {
		conn := dial(t)
		if _, err := io.WriteString(conn, requestLine); err != nil {
			t.Fatal(err)
		}
		if !closedWithin(conn, 20*time.Second) {
			t.Error("a connection still sending its headers was not closed")
		}
	})
	t.Run("no TLS handshake", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if !closedWithin(conn, 20*time.Second) {
			t.Error("a connection without a handshake was not closed")
		}
	})
	// The webhook still answers.
	code, body := s.post(t)
	checkInjected(t, code, body)
}

// TestRunConnectionCap: past --max-connections, a new connection takes the
// place of the one idle longest, here connections that made their TLS
// handshake and sent nothing; the others stay open, and the new one is
// served.
func TestRunConnectionCap(t *testing.T) {
	cfg, pool := testConfig(t)
	cfg.MaxConnections = 4
	s := start(t, cfg, pool)
	evicted := s.metric(t, `secretfetch_webhook_closed_connections_total{reason="evicted"}`)
	var idle []*tls.Conn
	for range cfg.MaxConnections {
		conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", cfg.Port), &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		idle = append(idle, conn)
	}
	code, body := s.post(t)
	checkInjected(t, code, body)
	if !closedWithin(idle[0], 20*time.Second) {
		t.Error("the connection idle longest is still open")
	}
	for i, conn := range idle[1:] {
		if closedWithin(conn, 100*time.Millisecond) {
			t.Errorf("idle connection %d was closed too", i+1)
		}
	}
	if got := s.metric(t, `secretfetch_webhook_closed_connections_total{reason="evicted"}`); got != evicted+1 {
		t.Errorf("evicted connections counted: %v, want %v", got, evicted+1)
	}
}

// TestConnLimiter: the limiter never counts more than its cap; at the cap a
// new connection evicts the one idle longest, and is refused when every
// connection is serving a request.
func TestConnLimiter(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "closed"}, []string{"reason"})
	l := newConnLimiter(tcp, 2, closed)
	release := make(chan struct{})
	srv := &http.Server{
		Handler: l.serving(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/wait" {
				<-release
			}
			io.WriteString(w, "ok")
		})),
		ConnContext:       l.connContext,
		ConnState:         l.track,
		ReadHeaderTimeout: time.Minute,
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	// request sends a GET on a new connection, and returns the connection
	// and a channel with the answer's status line.
	request := func(t *testing.T, path string) (net.Conn, chan string) {
		t.Helper()
		conn, err := net.Dial("tcp", tcp.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
		answer := make(chan string, 1)
		go func() {
			line, _ := bufio.NewReader(conn).ReadString('\n')
			answer <- strings.TrimSpace(line)
		}()
		return conn, answer
	}
	waitOpen := func(t *testing.T, n int) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); l.open() != n; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d connections open, want %d", l.open(), n)
			}
		}
	}

	// Two requests being served fill the limiter: a third connection is
	// refused, closed before it is read.
	_, first := request(t, "/wait")
	_, second := request(t, "/wait")
	waitOpen(t, 2)
	for deadline := time.Now().Add(20 * time.Second); !allBusy(l); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the two requests never became busy")
		}
	}
	if _, refused := request(t, "/"); <-refused != "" {
		t.Error("a connection past the cap was answered while every connection was busy")
	}
	if got := counterValue(t, closed, closedRefused); got != 1 {
		t.Errorf("refused = %v, want 1", got)
	}
	close(release)
	for _, answer := range []chan string{first, second} {
		if got := <-answer; got != "HTTP/1.1 200 OK" {
			t.Errorf("answer %q, want 200", got)
		}
	}

	// Both connections are idle now: a new one evicts the first to go
	// idle, and is served.
	if _, answer := request(t, "/"); <-answer != "HTTP/1.1 200 OK" {
		t.Error("a connection past the cap was not served with an idle one to evict")
	}
	if got := counterValue(t, closed, closedEvicted); got != 1 {
		t.Errorf("evicted = %v, want 1", got)
	}
	if n := l.open(); n > 2 {
		t.Errorf("%d connections counted, more than the cap of 2", n)
	}
}

// TestConnLimiterEvictsClosingFirst: at the cap, a connection closing after
// an error answer (net/http keeps it half a second) is evicted before one
// that has not sent its request yet, though that one is older.
func TestConnLimiterEvictsClosingFirst(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "closed"}, []string{"reason"})
	l := newConnLimiter(tcp, 2, closed)
	srv := &http.Server{
		Handler:     l.serving(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })),
		ConnContext: l.connContext, ConnState: l.track,
		MaxHeaderBytes: 1 << 10, ReadHeaderTimeout: time.Minute,
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	dial := func(t *testing.T) net.Conn {
		conn, err := net.Dial("tcp", tcp.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	statusLine := func(conn net.Conn) string {
		_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		line, _ := bufio.NewReader(conn).ReadString('\n')
		return strings.TrimSpace(line)
	}

	waiting := dial(t)
	for deadline := time.Now().Add(20 * time.Second); l.open() != 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first connection was never counted")
		}
	}
	refused := dial(t)
	fmt.Fprintf(refused, "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\n\r\n", strings.Repeat("a", 8<<10))
	if got := statusLine(refused); !strings.Contains(got, "431") {
		t.Fatalf("answer %q, want 431", got)
	}
	served := dial(t)
	io.WriteString(served, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if got := statusLine(served); got != "HTTP/1.1 200 OK" {
		t.Fatalf("answer %q, want 200", got)
	}
	if closedWithin(waiting, 100*time.Millisecond) {
		t.Error("the connection that had not sent its request was evicted, not the one closing after a 431")
	}
}

// allBusy reports whether every connection l counts is serving a request.
func allBusy(l *connLimiter) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		if !c.busy {
			return false
		}
	}
	return len(l.conns) > 0
}

func counterValue(t *testing.T, c *prometheus.CounterVec, label string) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.WithLabelValues(label).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
