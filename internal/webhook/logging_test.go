package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestLogOptions: each level logs what it names and nothing below it, in
// the format asked for, with the logger's name and the error as fields.
func TestLogOptions(t *testing.T) {
	for _, tt := range []struct {
		level string
		want  []string // the messages that are written, in order
	}{
		{"error", []string{"failed"}},
		{"info", []string{"info", "failed"}},
		{"", []string{"info", "failed"}},
		{"1", []string{"info", "v1", "failed"}},
		{"debug", []string{"info", "v1", "v4", "failed"}},
	} {
		t.Run(tt.level, func(t *testing.T) {
			var out bytes.Buffer
			log, err := LogOptions{Level: tt.level, Format: LogJSON}.NewLogger(&out)
			if err != nil {
				t.Fatal(err)
			}
			log = log.WithName("webhook")
			log.Info("info", "k", "v")
			log.V(1).Info("v1")
			log.V(4).Info("v4")
			log.V(5).Info("v5")
			log.Error(errors.New("boom"), "failed")
			var got []string
			for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
				var rec map[string]any
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					t.Fatalf("line %q is not JSON: %v", line, err)
				}
				if rec["logger"] != "webhook" {
					t.Errorf("line %q: logger = %v, want webhook", line, rec["logger"])
				}
				if rec["msg"] == "failed" && rec["err"] != "boom" {
					t.Errorf("error line %q: err = %v, want boom", line, rec["err"])
				}
				got = append(got, rec["msg"].(string))
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("--log-level=%s wrote %q, want %q", tt.level, got, tt.want)
			}
		})
	}
}

func TestLogOptionsText(t *testing.T) {
	var out bytes.Buffer
	log, err := LogOptions{Level: "info", Format: LogText}.NewLogger(&out)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("starting", "port", 9443)
	if got := out.String(); !strings.Contains(got, `msg=starting port=9443`) {
		t.Errorf("text line = %q, want msg=starting port=9443 in it", got)
	}
}

func TestLogOptionsErrors(t *testing.T) {
	for _, tt := range []struct {
		opts LogOptions
		want string
	}{
		{LogOptions{Level: "loud"}, `--log-level: "loud" is not`},
		{LogOptions{Level: "-1"}, `--log-level: "-1"`},
		{LogOptions{Level: "info", Format: "console"}, `--log-format: "console" is neither json nor text`},
	} {
		if _, err := tt.opts.NewLogger(&bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: error = %v, want %q", tt.opts, err, tt.want)
		}
	}
}
