package refresh

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/secretfetch/secretfetch/internal/fetch"
)

// Notification is the body POSTed to the notify URL after each swap: the
// files that changed and their versions, never a value.
type Notification struct {
	Dir   string   `json:"dir"`
	Files []Change `json:"files"`
}

// maxNotifyAnswer bounds how much of the app's answer is read (and thrown
// away), so that the connection can be reused.
const maxNotifyAnswer = 64 << 10

// notify POSTs the changes once. A failure is logged and not retried: the
// files are already in place, and the app can also watch ..data.
func (r *Refresher) notify(ctx context.Context, changes []Change) {
	if err := r.post(ctx, changes); err != nil {
		r.opts.Log.Warn("notifying the app failed; the new files are in place", "url", r.opts.NotifyURL, "error", fetch.ErrorText(err))
		return
	}
	r.opts.Log.Info("notified the app", "url", r.opts.NotifyURL, "files", len(changes))
}

func (r *Refresher) post(ctx context.Context, changes []Change) error {
	body, err := json.Marshal(Notification{Dir: r.plan.Dir, Files: changes})
	if err != nil {
		return fmt.Errorf("encoding the notification: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.opts.NotifyURL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("making the request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "secretfetch-refresh")
	resp, err := r.opts.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxNotifyAnswer))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("the app answered %s", resp.Status)
	}
	return nil
}
