package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestAnswerOutcome(t *testing.T) {
	for _, tt := range []struct {
		status int
		body   string
		want   string
	}{
		{429, `{"response":{"uid":"","allowed":false,"status":{"message":"busy","code":429}}}`, "HTTP 429 review 429"},
		{200, `{"response":{"status":{"metadata":{},"code":408}}}`, "HTTP 200 review 408"},
		{502, `not json`, "HTTP 502"},
	} {
		if got := answerOutcome(tt.status, []byte(tt.body)); got != tt.want {
			t.Errorf("answerOutcome(%d, %s) = %q, want %q", tt.status, tt.body, got, tt.want)
		}
	}
}

func TestSummarize(t *testing.T) {
	got := summarize([]probe{
		{latency: 3 * time.Millisecond, outcome: "injected"},
		{latency: 9 * time.Millisecond, outcome: "injected"},
		{latency: time.Millisecond, outcome: "HTTP 429 review 429"},
	})
	for _, want := range []string{"3 sent", "injected:2", "HTTP 429 review 429:1", "median 9ms", "max 9ms"} {
		if !strings.Contains(got, want) {
			t.Errorf("summarize = %q, lacks %q", got, want)
		}
	}
	if got := summarize([]probe{{outcome: "failed"}}); !strings.Contains(got, "none injected") {
		t.Errorf("summarize with no injection = %q", got)
	}
}

// TestCraftedBody: every crafted review is JSON, and fits in the webhook's
// body cap; the one at the caps fills it.
func TestCraftedBody(t *testing.T) {
	for _, kind := range []string{"empty-containers", "zeros", "at-caps"} {
		b, err := craftedBody(kind)
		if err != nil {
			t.Fatal(err)
		}
		if !json.Valid(b) || len(b) > maxReviewBody {
			t.Errorf("%s: %d bytes, valid JSON %v; want JSON of at most %d bytes", kind, len(b), json.Valid(b), maxReviewBody)
		}
		if kind == "at-caps" && len(b) != maxReviewBody {
			t.Errorf("at-caps: %d bytes, want %d", len(b), maxReviewBody)
		}
	}
	if _, err := craftedBody("other"); err == nil {
		t.Error("an unknown kind was accepted")
	}
}
