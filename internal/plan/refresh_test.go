package plan

import (
	"strings"
	"testing"
	"time"
)

func TestValidateNotifyURL(t *testing.T) {
	for _, ok := range []string{
		"http://127.0.0.1:8080/reload",
		"http://127.0.0.1:1",
		"http://127.3.2.1:65535/a/b?x=1",
		"http://[::1]:9000/reload",
	} {
		if err := ValidateNotifyURL(ok); err != nil {
			t.Errorf("ValidateNotifyURL(%q) = %v, want nil", ok, err)
		}
	}
	for in, want := range map[string]string{
		"https://127.0.0.1:8080/":             "scheme must be http",
		"http://localhost:8080/":              "loopback address",
		"http://10.0.0.1:8080/":               "loopback address",
		"http://example.com:80/":              "loopback address",
		"http://169.254.169.254:80/":          "loopback address",
		"http://127.0.0.1/reload":             "explicit port",
		"http://127.0.0.1:0/":                 "explicit port",
		"http://127.0.0.1:70000/":             "explicit port",
		"http://user:pw@127.0.0.1:8080/":      "user information",
		"http://127.0.0.1:8080/#x":            "not a plain http URL",
		"127.0.0.1:8080":                      "",
		"http://127.0.0.1:8080/" + long(3000): "longer than 2048",
	} {
		err := ValidateNotifyURL(in)
		if err == nil {
			t.Errorf("ValidateNotifyURL(%.40q) = nil, want an error", in)
			continue
		}
		if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "http://127.0.0.1:<port>/<path>") {
			t.Errorf("ValidateNotifyURL(%.40q) = %v, want it to say %q and what is allowed", in, err, want)
		}
	}
}

func long(n int) string { return strings.Repeat("a", n) }

func TestValidateRefreshInterval(t *testing.T) {
	for _, c := range []struct {
		d, min time.Duration
		ok     bool
	}{
		{time.Minute, time.Minute, true},
		{24 * time.Hour, time.Minute, true},
		{59 * time.Second, time.Minute, false},
		{24*time.Hour + time.Second, time.Minute, false},
		{5 * time.Second, 2 * time.Second, true},
		{0, time.Minute, false},
		{-time.Minute, 0, false},
	} {
		err := ValidateRefreshInterval(c.d, c.min)
		if (err == nil) != c.ok {
			t.Errorf("ValidateRefreshInterval(%v, %v) = %v, want ok=%v", c.d, c.min, err, c.ok)
		}
	}
}
