package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// maxNotification bounds the body of a notification that is logged.
const maxNotification = 64 << 10

// listenNotify serves addr, which must be a loopback address, until ctx
// ends, and writes one line per request to w: "notify: METHOD PATH BODY".
// The refresh sidecar POSTs the changed files and their versions after each
// swap, never a value, so the line is safe to log; the e2e suite reads it
// from the container log.
func listenNotify(ctx context.Context, addr string, w io.Writer) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--notify-listen %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--notify-listen %q: listen on a loopback address such as 127.0.0.1:9000", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, maxNotification))
		mu.Lock()
		fmt.Fprintf(w, "notify: %s %s %s\n", r.Method, r.URL.Path, strconv.Quote(string(body)))
		mu.Unlock()
		rw.WriteHeader(http.StatusNoContent)
	})}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
