package main

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/api/resource"
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
	afterEachGC(func(live uint64) {
		live = max(live, 4<<20)
		goal := max(2*live, batchHeapFloor)
		debug.SetGCPercent(int(math.Round(float64(goal-live) * 100 / float64(live))))
		debug.SetMemoryLimit(int64(min(goal+batchHeapFloor/2, math.MaxInt64/2)))
	})
}

// daemonMemoryFloor is the least memory the daemon's soft limit allows the
// Go runtime (heap, stacks and its own bookkeeping; the binary's code is
// not counted): at rest the daemon keeps 15-40 MB live (10 clusters of
// 2,000 objects each), and its process is some 50 MB more than what the
// runtime manages.
const daemonMemoryFloor = 96 << 20

// daemonMemoryLimit is the soft memory limit of the long-running commands
// (run, serve) with --memory-limit auto: twice the live heap (the goal
// GOGC=100 sets anyway, so collections are no more frequent than Go's
// default), at least daemonMemoryFloor, at most 90% of the container's
// memory limit (0: none). Without a limit, memory freed after a burst (a
// fleet-wide commit holds every object being applied and its health reads)
// stays with the process: after the 10-cluster scale run its RSS stayed at
// 275 MB with 38 MB live. A limit makes the runtime return it.
func daemonMemoryLimit(live, container uint64) int64 {
	limit := max(2*live, daemonMemoryFloor)
	if container > 0 {
		limit = min(limit, container/10*9)
	}
	return int64(min(limit, math.MaxInt64/2))
}

// daemonGC applies --memory-limit: "auto" re-tunes the soft limit after
// each collection (daemonMemoryLimit), unless GOMEMLIMIT or GOGC is set in
// the environment; "off" leaves Go's default (no limit); a quantity (512Mi,
// 1G) is a fixed soft limit, as GOMEMLIMIT would be. With auto it returns
// what the daemon calls once its rollouts have settled (releaseIdle).
func daemonGC(flag string) (settled func(), err error) {
	switch flag {
	case "off":
		return nil, nil
	case "", "auto":
		if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
			return nil, nil
		}
		container := containerMemoryLimit()
		daemonTuner.Do(func() {
			afterEachGC(func(live uint64) { debug.SetMemoryLimit(daemonMemoryLimit(live, container)) })
		})
		return releaseIdle, nil
	}
	q, err := resource.ParseQuantity(flag)
	if err != nil || q.Sign() <= 0 {
		return nil, fmt.Errorf("--memory-limit %q: want auto, off or a size such as 256Mi", flag)
	}
	debug.SetMemoryLimit(q.Value())
	return nil, nil
}

// releaseIdle returns memory to the system once the daemon's rollouts have
// settled, when it holds more than daemonMemoryFloor and half as much again
// as after its last release: one forced collection (debug.FreeOSMemory)
// gives back what the burst left. The limit alone does not: it follows the
// live heap at collections, and the last one may have been in the middle of
// the burst (the scale run held 252 MB for its idle minute with 27 MB
// live). At rest the daemon holds less than the floor, or no more than
// after the last release, and this costs nothing.
func releaseIdle() {
	held := heldMemory()
	if !shouldRelease(held, lastRelease.Load()) {
		return
	}
	debug.FreeOSMemory()
	lastRelease.Store(heldMemory())
}

// lastRelease is what the runtime held right after releaseIdle's last
// forced collection.
var lastRelease atomic.Uint64

// shouldRelease: held is over the floor and has grown by half since the
// last release left the runtime holding last.
func shouldRelease(held, last uint64) bool {
	return held > daemonMemoryFloor && held > last+last/2
}

// heldMemory is the memory the Go runtime has from the system and has not
// returned (heap, stacks, its own structures); 0 when unknown.
func heldMemory() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 || s[1].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64() - s[1].Value.Uint64()
}

// daemonTuner starts the auto tuner once per process.
var daemonTuner sync.Once

// containerMemoryLimit is the memory limit of the process's cgroup (v2
// memory.max, v1 memory.limit_in_bytes), 0 when there is none or it cannot
// be read.
func containerMemoryLimit() uint64 {
	for _, p := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || n >= 1<<62 { // "max", or v1's "unlimited" (a huge number)
			return 0
		}
		return n
	}
	return 0
}

// afterEachGC calls tune with the live heap now and after every garbage
// collection.
func afterEachGC(tune func(live uint64)) {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	run := func() {
		metrics.Read(sample)
		live := uint64(0)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			live = sample[0].Value.Uint64()
		}
		tune(live)
	}
	run()
	var rearm func()
	rearm = func() {
		// A finalizer runs after the collection that found its object
		// unreachable: once per cycle, as long as it re-arms itself.
		runtime.SetFinalizer(new([64]byte), func(*[64]byte) {
			run()
			rearm()
		})
	}
	rearm()
}
