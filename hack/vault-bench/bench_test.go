package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
)

var reviewFile = flag.String("review", "../testdata/admissionreview.json", "secretfetch's AdmissionReview, from which vault-k8s's is derived")

// BenchmarkVaultHandler is vault-k8s's whole webhook for one pod, as
// secretfetch's BenchmarkHandler (internal/mutate) is its own:
// AdmissionReview bytes in through Handler.Handle (decode, mutate, patch,
// encode), response bytes out, with httptest and no TLS or network. The pod
// is secretfetch's benchmark review with vault-k8s's annotations for ten
// secrets (vaultReview).
//
//	go test -run '^$' -bench BenchmarkVaultHandler -benchmem .
func BenchmarkVaultHandler(b *testing.B) {
	ours, err := os.ReadFile(*reviewFile)
	if err != nil {
		b.Fatal(err)
	}
	body, err := vaultReview(ours)
	if err != nil {
		b.Fatal(err)
	}
	h := newHandler(io.Discard)

	// Check once that the benchmark measures an injection.
	rec := post(h.Handle, body)
	var review struct {
		Response struct {
			Allowed bool            `json:"allowed"`
			Patch   json.RawMessage `json:"patch"`
			Result  *struct {
				Message string `json:"message"`
			} `json:"status"`
		} `json:"response"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &review); err != nil {
		b.Fatalf("HTTP %d: %v", rec.Code, err)
	}
	if !review.Response.Allowed || len(review.Response.Patch) == 0 {
		b.Fatalf("allowed=%v patch=%d bytes result=%+v; want an injection", review.Response.Allowed, len(review.Response.Patch), review.Response.Result)
	}

	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if rec := post(h.Handle, body); rec.Code != http.StatusOK {
			b.Fatalf("HTTP %d", rec.Code)
		}
	}
}

func post(h http.HandlerFunc, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/mutate", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h(rec, req)
	return rec
}
