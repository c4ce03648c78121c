package main

import (
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
)

// batchHeapFloor is the heap the one-shot commands (render, plan) let grow
// before collecting: a render allocates much and keeps little (a fleet of
// 1,200 pairs keeps 15-30 MB live), so with Go's default (collect when the
// heap doubles) it spends a tenth of its CPU time in a dozen or more
// collections.
const batchHeapFloor = 48 << 20

// batchGC has the garbage collector let the heap grow to batchHeapFloor,
// and beyond it collect as GOGC=100 does (when the heap is twice the live
// heap): after each collection the percentage is set from the live heap.
// A memory limit half a floor above that goal keeps a CPU-starved collector
// from letting the heap overshoot it much. GOGC or GOMEMLIMIT in the
// environment leave the collector as they set it.
func batchGC() {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	tune := func() {
		metrics.Read(sample)
		live := uint64(0)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			live = sample[0].Value.Uint64()
		}
		live = max(live, 4<<20)
		goal := max(2*live, batchHeapFloor)
		debug.SetGCPercent(int(math.Round(float64(goal-live) * 100 / float64(live))))
		debug.SetMemoryLimit(int64(min(goal+batchHeapFloor/2, math.MaxInt64/2)))
	}
	tune()
	var rearm func()
	rearm = func() {
		// A finalizer runs after the collection that found its object
		// unreachable: once per cycle, as long as it re-arms itself.
		runtime.SetFinalizer(new([64]byte), func(*[64]byte) {
			tune()
			rearm()
		})
	}
	rearm()
}
