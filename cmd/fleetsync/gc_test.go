package main

import "testing"

func TestDaemonMemoryLimit(t *testing.T) {
	const mi = 1 << 20
	for _, c := range []struct {
		name            string
		live, container uint64
		want            int64
	}{
		{"small heap: the floor", 10 * mi, 0, daemonMemoryFloor},
		{"twice the live heap above the floor", 200 * mi, 0, 400 * mi},
		{"capped at 90% of the container's limit", 300 * mi, 512 * mi, 512 * mi / 10 * 9},
		{"a container smaller than the floor caps it too", 10 * mi, 64 * mi, 64 * mi / 10 * 9},
	} {
		if got := daemonMemoryLimit(c.live, c.container); got != c.want {
			t.Errorf("%s: daemonMemoryLimit(%d Mi, %d Mi) = %d Mi, want %d Mi", c.name, c.live/mi, c.container/mi, got/mi, c.want/mi)
		}
	}
}

func TestDaemonGCFlag(t *testing.T) {
	for _, bad := range []string{"lots", "-1Mi", "0"} {
		if _, err := daemonGC(bad); err == nil {
			t.Errorf("--memory-limit %q: no error", bad)
		}
	}
	if settle, err := daemonGC("off"); err != nil || settle != nil {
		t.Errorf("--memory-limit off: %v (settle func set: %t)", err, settle != nil)
	}
}

func TestShouldRelease(t *testing.T) {
	const mi = 1 << 20
	for _, c := range []struct {
		held, last uint64
		want       bool
	}{
		{80 * mi, 0, false},         // at rest, under the floor
		{250 * mi, 0, true},         // after a burst, never released
		{250 * mi, 80 * mi, true},   // a new burst
		{130 * mi, 100 * mi, false}, // a big fleet at rest: no collection every time it settles
		{160 * mi, 100 * mi, true},
	} {
		if got := shouldRelease(c.held, c.last); got != c.want {
			t.Errorf("shouldRelease(%d Mi, last %d Mi) = %t, want %t", c.held/mi, c.last/mi, got, c.want)
		}
	}
	if heldMemory() == 0 {
		t.Error("heldMemory: the runtime's metrics gave nothing")
	}
}
