package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// Reasons of the refused-requests counter.
const (
	refusedBusy = "busy" // every slot was taken: 429
	refusedSlow = "slow" // a request still sending its body after evictAfter, cut to make room
)

// guard bounds the admission requests served at once, and the time a client
// may take to send one's body. net/http's server has no limit on requests,
// and one read deadline for the headers and body together (ReadTimeout),
// which cannot cut off a slow body to make room for another, so the webhook
// enforces both per request, in front of the Endpoint. The headers are
// bounded by the server (see webhookServer).
//
// A slot is held from the end of the headers until the answer is written.
// Requests that declare a body of at most smallBody bytes (every ordinary
// review: a pod of a few KiB) take their slots from a pool of their own,
// smallPerLarge times larger, so that large bodies, which is what an attacker
// sends to hold memory, never crowd them out. A small slot holds 64 KiB where
// a large one holds up to 3.5 MiB: the small pool holds at most about a
// sixth of what the large one does.
//
// When every slot of its pool is taken, a new request may evict the holder that has been
// sending its body longest, once that has lasted evictAfter: the API server
// sends a review in milliseconds, so a body still arriving then comes from a
// slow or hostile client, and it must not lock the API server out for the
// whole read deadline. The new request waits up to queueWait for a slot
// (eviction, or a request that ends), and is otherwise refused at once with
// 429 and Retry-After, which the API server's client retries.
type guard struct {
	next        http.Handler
	log         logr.Logger
	readTimeout time.Duration
	evictAfter  time.Duration
	queueWait   time.Duration

	small, large *pool
	refused      *prometheus.CounterVec

	mu     sync.Mutex
	active map[*request]struct{}
}

const (
	// smallBody is the largest declared body that takes a small slot.
	smallBody = 64 << 10
	// smallPerLarge is how many small slots there are per large one.
	smallPerLarge = 8
)

// pool is a set of slots.
type pool struct {
	slots   chan struct{} // a token per request served
	waiting atomic.Int32  // requests waiting for a slot, at most cap(slots)
}

func newPool(n int) *pool { return &pool{slots: make(chan struct{}, n)} }

// request is one request holding a slot.
type request struct {
	rc      *http.ResponseController
	pool    *pool
	started time.Time
	reading atomic.Bool // the body has not reached EOF or an error yet
	cut     bool        // evicted; guarded by guard.mu
}

type guardOptions struct {
	maxInFlight int
	readTimeout time.Duration
	evictAfter  time.Duration
	queueWait   time.Duration
}

func newGuard(next http.Handler, log logr.Logger, reg prometheus.Registerer, o guardOptions) (*guard, error) {
	if o.maxInFlight < 1 {
		return nil, fmt.Errorf("--max-in-flight is %d; it must be at least 1", o.maxInFlight)
	}
	if o.readTimeout <= 0 {
		return nil, fmt.Errorf("--body-read-timeout is %v; it must be positive", o.readTimeout)
	}
	refused, err := registerRefused(reg)
	if err != nil {
		return nil, err
	}
	return &guard{
		next: next, log: log, readTimeout: o.readTimeout, evictAfter: o.evictAfter, queueWait: o.queueWait,
		small: newPool(smallPerLarge * o.maxInFlight), large: newPool(o.maxInFlight),
		refused: refused, active: map[*request]struct{}{},
	}, nil
}

// registerRefused registers secretfetch_webhook_refused_requests_total on
// reg, or returns the one already there (tests start Run more than once in a
// process).
func registerRefused(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "secretfetch_webhook_refused_requests_total",
		Help: "Admission requests the webhook server refused before reading them whole: busy (every slot taken, answered 429) " +
			"and slow (still sending the body when a slot was needed, cut off).",
	}, []string{"reason"})
	c, err := registerOrGet(reg, c)
	if err != nil {
		return nil, fmt.Errorf("registering the refused requests counter: %w", err)
	}
	c.WithLabelValues(refusedBusy)
	c.WithLabelValues(refusedSlow)
	return c, nil
}

func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	p := g.large
	if r.ContentLength >= 0 && r.ContentLength <= smallBody {
		p = g.small
	}
	if !g.acquire(r, p) {
		g.refused.WithLabelValues(refusedBusy).Inc()
		// Read nothing more from this client: after the handler, net/http
		// would drain up to 256 KiB of the body at the client's pace.
		_ = rc.SetReadDeadline(time.Now())
		w.Header().Set("Connection", "close")
		w.Header().Set("Retry-After", "1")
		writeRefusal(w, g.log, http.StatusTooManyRequests,
			fmt.Sprintf("the webhook serves %d admission requests of this size at once; retry", cap(p.slots)))
		return
	}
	defer func() { <-p.slots }()

	if err := rc.SetReadDeadline(time.Now().Add(g.readTimeout)); err != nil {
		// Without a deadline a slow client could hold the slot for ever:
		// fail closed.
		g.log.Error(err, "setting the read deadline")
		w.Header().Set("Connection", "close")
		writeRefusal(w, g.log, http.StatusInternalServerError, "the webhook could not bound the time to read the request")
		return
	}
	req := &request{rc: rc, pool: p, started: time.Now()}
	req.reading.Store(true)
	g.mu.Lock()
	g.active[req] = struct{}{}
	g.mu.Unlock()
	defer func() {
		// Under the lock, so that an eviction never reaches a connection
		// that has moved on to its next request.
		g.mu.Lock()
		delete(g.active, req)
		g.mu.Unlock()
	}()
	r.Body = &watchedBody{ReadCloser: r.Body, reading: &req.reading}
	g.next.ServeHTTP(w, r)
}

// acquire takes a slot of p, evicting a slow sender or waiting up to
// queueWait when none is free. It reports false when the request must be
// refused.
func (g *guard) acquire(r *http.Request, p *pool) bool {
	select {
	case p.slots <- struct{}{}:
		return true
	default:
	}
	// The waiters are bounded too: each holds its headers.
	if p.waiting.Add(1) > int32(cap(p.slots)) {
		p.waiting.Add(-1)
		return false
	}
	defer p.waiting.Add(-1)
	g.evictSlowest(p)
	t := time.NewTimer(g.queueWait)
	defer t.Stop()
	select {
	case p.slots <- struct{}{}:
		return true
	case <-t.C:
		return false
	case <-r.Context().Done():
		return false
	}
}

// evictSlowest cuts off the request of p that has been sending its body
// longest, if that is longer than evictAfter. Its read fails at once, and
// the Endpoint answers it with 408.
func (g *guard) evictSlowest(p *pool) {
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	var slowest *request
	for req := range g.active {
		if req.pool != p || req.cut || !req.reading.Load() || now.Sub(req.started) < g.evictAfter {
			continue
		}
		if slowest == nil || req.started.Before(slowest.started) {
			slowest = req
		}
	}
	if slowest == nil {
		return
	}
	slowest.cut = true
	g.refused.WithLabelValues(refusedSlow).Inc()
	if err := slowest.rc.SetReadDeadline(now); err != nil {
		g.log.Error(err, "cutting off a slow request")
	}
}

// watchedBody records when the body has been read to its end (or failed), after
// which the request is no longer a slow sender.
type watchedBody struct {
	io.ReadCloser
	reading *atomic.Bool
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.reading.Store(false)
	}
	return n, err
}

// writeRefusal answers with HTTP status code and an AdmissionReview that
// carries the same code and message. It has no UID: the request was not
// read. The API server reports the status and, for 429 with Retry-After,
// retries.
func writeRefusal(w http.ResponseWriter, log logr.Logger, code int, msg string) {
	resp := admission.Errored(int32(code), errors.New(msg))
	review := admissionv1.AdmissionReview{Response: &resp.AdmissionResponse}
	review.SetGroupVersionKind(admissionv1.SchemeGroupVersion.WithKind("AdmissionReview"))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	if err := json.NewEncoder(w).Encode(&review); err != nil {
		log.V(1).Info("writing a refusal", "error", err.Error())
	}
}
