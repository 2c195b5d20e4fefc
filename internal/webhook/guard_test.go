package webhook

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/secretfetch/secretfetch/internal/mutate"
)

// slowClient is a request whose headers have been sent and whose body
// arrives only as the test sends it, on its own TLS connection.
type slowClient struct {
	conn *tls.Conn
	body []byte
	sent int
}

// openSlow sends the headers of a review and the first n bytes of its body.
func (s *server) openSlow(t *testing.T, body []byte, n int) *slowClient {
	t.Helper()
	conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", s.cfg.Port), &tls.Config{RootCAs: s.pool, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", mutate.Path, len(body))
	c := &slowClient{conn: conn, body: body}
	c.send(t, n)
	return c
}

func (c *slowClient) send(t *testing.T, n int) {
	t.Helper()
	if _, err := c.conn.Write(c.body[c.sent : c.sent+n]); err != nil {
		t.Fatalf("sending the body: %v", err)
	}
	c.sent += n
}

// answer reads the response and the code its AdmissionReview carries (200
// when the review has no status code). It fails the test if nothing comes
// within 20 s.
func (c *slowClient) answer(t *testing.T) (*http.Response, int32, []byte) {
	t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c.conn), nil)
	if err != nil {
		t.Fatalf("reading the answer to a request whose body was %d of %d bytes: %v", c.sent, len(c.body), err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return resp, reviewCode(t, b), b
}

// reviewCode is the status code in an AdmissionReview's response, 200 when
// it has none.
func reviewCode(t *testing.T, b []byte) int32 {
	t.Helper()
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(b, &out); err != nil || out.Response == nil || out.APIVersion != "admission.k8s.io/v1" {
		t.Fatalf("not an admission.k8s.io/v1 AdmissionReview with a response (%v): %.300s", err, b)
	}
	if out.Response.Result == nil || out.Response.Result.Code == 0 {
		return http.StatusOK
	}
	return out.Response.Result.Code
}

// metric reads one sample of the webhook's /metrics, 0 when absent.
func (s *server) metric(t *testing.T, series string) float64 {
	t.Helper()
	code, text := get("http://" + s.cfg.MetricsBindAddress + "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d", code)
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(text)
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

const inFlight = `controller_runtime_webhook_requests_in_flight{webhook="/mutate-v1-pod"}`

// waitInFlight waits until the server has n admission requests in flight.
func (s *server) waitInFlight(t *testing.T, n float64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for s.metric(t, inFlight) != n {
		if time.Now().After(deadline) {
			t.Fatalf("in flight = %v, want %v", s.metric(t, inFlight), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRunReadDeadline: a client that trickles its body is cut off once the
// read deadline has passed, with 408, long before it has sent the body.
func TestRunReadDeadline(t *testing.T) {
	cfg, pool := testConfig(t)
	cfg.BodyReadTimeout = 300 * time.Millisecond
	s := start(t, cfg, pool)

	c := s.openSlow(t, review(t), 1)
	var sent atomic.Int64
	stop := make(chan struct{})
	trickled := make(chan struct{})
	go func() {
		// One byte every 50 ms: the whole review would take about 30 s.
		defer close(trickled)
		for i := c.sent; i < len(c.body); i++ {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := c.conn.Write(c.body[i : i+1]); err != nil {
				return
			}
			sent.Store(int64(i + 1))
		}
	}()
	resp, code, body := c.answer(t)
	close(stop)
	<-trickled
	if n := sent.Load(); n >= int64(len(c.body)) {
		t.Fatalf("answered only after the whole body (%d bytes) was trickled in; want it cut off", n)
	}
	if code != http.StatusRequestTimeout || !bytes.Contains(body, []byte("too slow")) {
		t.Errorf("answer %s, want a review refused with 408", body)
	}
	if !resp.Close {
		t.Error("the answer does not close the connection")
	}
}

// padded is review(t) padded with spaces to n bytes: a body over
// smallBody, which takes a large slot.
func padded(t *testing.T, n int) []byte {
	b := review(t)
	return append(b, bytes.Repeat([]byte(" "), n-len(b))...)
}

// postBody sends body on a connection of its own and returns the HTTP
// status, the Retry-After header and the answer.
func (s *server) postBody(t *testing.T, body []byte) (int, string, []byte) {
	t.Helper()
	resp, err := s.client().Post(s.webhookURL(), "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Retry-After"), b
}

// TestRunBoundsInFlight: with every slot of its pool held by requests whose
// bodies are still arriving (too young to evict), the next request is
// refused at once with 429, Retry-After and an AdmissionReview, and counted.
// Large bodies never take the slots of small ones (ordinary reviews), and
// once a slot frees, requests are served again.
func TestRunBoundsInFlight(t *testing.T) {
	cfg, pool := testConfig(t)
	cfg.MaxInFlight = 1 // one large slot, smallPerLarge small ones
	cfg.evictAfter = time.Hour
	cfg.queueWait = 50 * time.Millisecond
	s := start(t, cfg, pool)
	const busy = `secretfetch_webhook_refused_requests_total{reason="busy"}`
	before := s.metric(t, busy)
	refused := func(what string, body []byte) {
		t.Helper()
		status, retry, b := s.postBody(t, body)
		if status != http.StatusTooManyRequests || retry != "1" {
			t.Fatalf("%s: HTTP %d, Retry-After %q, %.300s; want 429 with Retry-After 1", what, status, retry, b)
		}
		if code := reviewCode(t, b); code != http.StatusTooManyRequests || !bytes.Contains(b, []byte("admission requests of this size at once")) {
			t.Errorf("%s: refusal %s, want a review with code 429 naming the bound", what, b)
		}
	}

	big := padded(t, smallBody+1)
	holder := s.openSlow(t, big, len(big)/2)
	s.waitInFlight(t, 1)
	refused("a second large body", big)
	if got := s.metric(t, busy) - before; got != 1 {
		t.Errorf("%s grew by %v, want 1", busy, got)
	}
	// An ordinary review has slots of its own.
	status, ans := s.post(t)
	checkInjected(t, status, ans)

	small := review(t)
	for range smallPerLarge {
		s.openSlow(t, small, len(small)/2)
	}
	s.waitInFlight(t, 1+smallPerLarge)
	refused("a small body with every small slot held", small)

	// A holder that finishes its body is answered, and frees its slot.
	holder.send(t, len(big)-holder.sent)
	_, code, b := holder.answer(t)
	if code != http.StatusOK || !bytes.Contains(b, []byte(`"allowed":true`)) {
		t.Fatalf("the holder's answer: %s", b)
	}
	s.waitInFlight(t, smallPerLarge)
	status, _, b = s.postBody(t, big)
	checkInjected(t, status, b)
}

// TestRunEvictsSlowSenders: when every slot is held by requests still
// sending their bodies past evictAfter, a new request evicts the one that
// has been sending longest (which is answered 408) and is served.
func TestRunEvictsSlowSenders(t *testing.T) {
	cfg, pool := testConfig(t)
	cfg.MaxInFlight = 2
	cfg.evictAfter = time.Nanosecond
	cfg.queueWait = 10 * time.Second
	s := start(t, cfg, pool)
	const slow = `secretfetch_webhook_refused_requests_total{reason="slow"}`
	before := s.metric(t, slow)

	big := padded(t, smallBody+1)
	// One after the other, so that the first has been sending longest.
	eldest := s.openSlow(t, big, 10)
	s.waitInFlight(t, 1)
	younger := s.openSlow(t, big, 10)
	s.waitInFlight(t, 2)

	status, _, b := s.postBody(t, big)
	checkInjected(t, status, b)
	if got := s.metric(t, slow) - before; got != 1 {
		t.Errorf("%s grew by %v, want 1", slow, got)
	}
	if _, code, b := eldest.answer(t); code != http.StatusRequestTimeout {
		t.Fatalf("the eldest holder's answer: %s; want it evicted with 408", b)
	}
	younger.send(t, len(big)-younger.sent)
	if _, code, b := younger.answer(t); code != http.StatusOK {
		t.Errorf("the younger holder, left in place: %s", b)
	}
}

// TestRunBodyCap: the server refuses a body one byte over 3.5 MiB with 413,
// without waiting for the body.
func TestRunBodyCap(t *testing.T) {
	cfg, pool := testConfig(t)
	s := start(t, cfg, pool)
	c := s.openSlow(t, make([]byte, 3<<20+512<<10+1), 0)
	_, code, b := c.answer(t)
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "larger than 3670016 bytes") {
		t.Errorf("answer %.300s, want a review refused with 413", b)
	}
}

// TestRunHTTP11Only: the server offers HTTP/1.1 alone in ALPN; a client
// that speaks only HTTP/2 cannot connect.
func TestRunHTTP11Only(t *testing.T) {
	cfg, pool := testConfig(t)
	s := start(t, cfg, pool)
	addr := fmt.Sprintf("127.0.0.1:%d", s.cfg.Port)

	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if p := conn.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
		t.Errorf("negotiated %q, want http/1.1", p)
	}
	conn.Close()

	if conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2"}}); err == nil {
		t.Errorf("an HTTP/2-only client connected and negotiated %q", conn.ConnectionState().NegotiatedProtocol)
		conn.Close()
	}
}
