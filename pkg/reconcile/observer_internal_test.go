package reconcile

import (
	"testing"
	"time"
)

// forget drops the snapshots, never the times of this process's writes
// (which keep a later snapshot from serving an app it predates).
func TestObserverForgetKeepsWriteTimes(t *testing.T) {
	o := newObserver(time.Second)
	o.wrote("north", "web")
	co := o.cluster("north")
	co.latest = &snapshot{start: time.Now(), done: make(chan struct{})}
	o.forget()
	if co.latest != nil {
		t.Error("the snapshot is still held after forget")
	}
	if co.wrote["web"].IsZero() {
		t.Error("forget dropped the time of web's write")
	}
}
