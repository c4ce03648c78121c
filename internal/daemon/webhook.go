package daemon

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
)

// MaxWebhookBody bounds a webhook request body (GitHub's largest payloads
// are a few MB; the body is only read to check the signature).
const MaxWebhookBody = 5 << 20

// GitHubWebhook returns the handler of POST /hooks/github: the body's HMAC
// (X-Hub-Signature-256, sha256=HEX) must match secret; a good request
// triggers a fetch (bursts merged), a bad one gets 401 and changes nothing.
func (d *Daemon) GitHubWebhook(secret []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := readBody(w, r, d, "github")
		if !ok {
			return
		}
		sig, found := strings.CutPrefix(r.Header.Get("X-Hub-Signature-256"), "sha256=")
		want := hmac.New(sha256.New, secret)
		want.Write(body)
		got, err := hex.DecodeString(sig)
		if len(secret) == 0 || !found || err != nil || !hmac.Equal(got, want.Sum(nil)) {
			d.opts.Metrics.webhook("github", "unauthorized")
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if r.Header.Get("X-GitHub-Event") == "ping" {
			d.opts.Metrics.webhook("github", "ping")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		d.opts.Metrics.webhook("github", "accepted")
		d.Trigger()
		w.WriteHeader(http.StatusAccepted)
	})
}

// GitLabWebhook returns the handler of POST /hooks/gitlab: X-Gitlab-Token
// must equal token.
func (d *Daemon) GitLabWebhook(token []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := readBody(w, r, d, "gitlab"); !ok {
			return
		}
		got := []byte(r.Header.Get("X-Gitlab-Token"))
		if len(token) == 0 || subtle.ConstantTimeCompare(got, token) != 1 {
			d.opts.Metrics.webhook("gitlab", "unauthorized")
			http.Error(w, "bad token", http.StatusUnauthorized)
			return
		}
		d.opts.Metrics.webhook("gitlab", "accepted")
		d.Trigger()
		w.WriteHeader(http.StatusAccepted)
	})
}

// readBody reads a bounded webhook body; it answers the request itself when
// it cannot.
func readBody(w http.ResponseWriter, r *http.Request, d *Daemon, provider string) ([]byte, bool) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxWebhookBody))
	if err != nil {
		d.opts.Metrics.webhook(provider, "too-large")
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return nil, false
	}
	return body, true
}
