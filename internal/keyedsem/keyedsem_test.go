package keyedsem

import (
	"context"
	"testing"
)

func TestPerKeyBound(t *testing.T) {
	s := New(1)
	ctx := context.Background()
	release, err := s.Acquire(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.Acquire(ctx, "b") // another key is not held up
	if err != nil {
		t.Fatal(err)
	}
	other()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Acquire(cancelled, "a"); err == nil {
		t.Fatal("a second holder of a full key got in")
	}
	release()
	again, err := s.Acquire(ctx, "a") // free again once released
	if err != nil {
		t.Fatal(err)
	}
	again()
}
