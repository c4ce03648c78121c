package imagesync

import (
	"net/http"
	"testing"
	"time"
)

func TestRetryDelay(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		header string
		want   time.Duration
	}{
		{"", 500 * time.Millisecond}, // no header: the backoff
		{"2", 2 * time.Second},       // seconds
		{now.Add(7 * time.Second).Format(http.TimeFormat), 7 * time.Second}, // an HTTP date
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},                  // a date passed: at once
		{"3600", 30 * time.Second},                                          // capped at maxWait
		{"soon", 500 * time.Millisecond},                                    // unreadable: the backoff
	} {
		if got := retryDelay(c.header, 500*time.Millisecond, 30*time.Second, now); got != c.want {
			t.Errorf("retryDelay(%q) = %s, want %s", c.header, got, c.want)
		}
	}
}
