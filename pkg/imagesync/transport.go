package imagesync

import (
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// retryTransport retries requests a registry throttled (429), waiting as its
// Retry-After says (at most maxWait), else with backoff; other failures are
// retried by go-containerregistry. It also counts the bytes uploaded.
type retryTransport struct {
	base http.RoundTripper
	// insecure registries may be spoken to over plain HTTP or unverified TLS
	// (through insecureBase); any other gets verified TLS only.
	insecure     map[string]bool
	insecureBase http.RoundTripper
	attempts     int
	backoff      time.Duration
	maxWait      time.Duration
	sent         atomic.Int64
	requests     atomic.Int64
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.base
	if t.insecure[req.URL.Host] {
		base = t.insecureBase
	} else if req.URL.Scheme != "https" {
		return nil, fmt.Errorf("plain HTTP to %s refused: the registry is not marked insecure (spec.registry.insecure)", req.URL.Host)
	}
	wait := t.backoff
	for attempt := 1; ; attempt++ {
		t.requests.Add(1)
		if req.ContentLength > 0 {
			t.sent.Add(req.ContentLength)
		}
		resp, err := base.RoundTrip(req)
		if err != nil || resp.StatusCode != http.StatusTooManyRequests || attempt >= t.attempts {
			return resp, err
		}
		if req.Body != nil && req.GetBody == nil {
			return resp, nil // the body cannot be sent again
		}
		d := retryDelay(resp.Header.Get("Retry-After"), wait, t.maxWait, time.Now())
		_ = resp.Body.Close()
		select {
		case <-req.Context().Done():
			return nil, req.Context().Err()
		case <-time.After(d):
		}
		if req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			req = req.Clone(req.Context())
			req.Body = body
		}
		wait = min(2*wait, t.maxWait)
	}
}

// retryDelay is how long to wait before retrying a throttled request: what
// Retry-After says (seconds or an HTTP date), else fallback; never more than
// maxWait, never negative.
func retryDelay(retryAfter string, fallback, maxWait time.Duration, now time.Time) time.Duration {
	d := fallback
	if retryAfter != "" {
		if n, err := strconv.Atoi(retryAfter); err == nil {
			d = time.Duration(n) * time.Second
		} else if at, err := http.ParseTime(retryAfter); err == nil {
			d = at.Sub(now)
		}
	}
	return max(0, min(d, maxWait))
}
