package renderbench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// BaselineStats describes one process-per-render run.
type BaselineStats struct {
	Processes   int   // processes run (one per pair)
	OutputBytes int64 // YAML written by all of them
	MaxChildRSS int64 // largest peak RSS of one process, bytes (0 when unknown)
	// CPU is the user+system CPU time of all the processes: unlike wall time,
	// it hardly depends on what else the machine runs.
	CPU time.Duration
}

// RunBaseline renders every pair the way a process-per-render tool does: one
// `kustomize build` or `helm template` process per (cluster, app) pair,
// workers at a time. tools maps a tool name to its binary.
func RunBaseline(ctx context.Context, f *Fleet, tools map[string]string, workers int) (BaselineStats, error) {
	workers = max(workers, 1)
	var (
		mu    sync.Mutex
		stats BaselineStats
		errs  []error
		wg    sync.WaitGroup
	)
	jobs := make(chan Pair)
	for range workers {
		wg.Go(func() {
			for p := range jobs {
				n, rss, cpu, err := runPair(ctx, f.Dir, tools[p.Tool], p)
				mu.Lock()
				stats.Processes++
				stats.CPU += cpu
				stats.OutputBytes += n
				stats.MaxChildRSS = max(stats.MaxChildRSS, rss)
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
			}
		})
	}
	for _, p := range f.Pairs {
		if ctx.Err() != nil {
			break
		}
		jobs <- p
	}
	close(jobs)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return stats, fmt.Errorf("baseline: %w", err)
	}
	return stats, errors.Join(errs...)
}

// runPair runs one process and returns its output size, peak RSS and CPU time.
func runPair(ctx context.Context, dir, bin string, p Pair) (int64, int64, time.Duration, error) {
	if bin == "" {
		return 0, 0, 0, fmt.Errorf("baseline %s/%s: no %s binary", p.Cluster, p.App, p.Tool)
	}
	cmd := exec.CommandContext(ctx, bin, p.Args...)
	cmd.Dir = dir
	var out countWriter
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	err := cmd.Run()
	var rss int64
	var cpu time.Duration
	if ps := cmd.ProcessState; ps != nil {
		cpu = ps.UserTime() + ps.SystemTime()
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			rss = ru.Maxrss * 1024 // kilobytes on Linux
		}
	}
	if err != nil {
		return out.n, rss, cpu, fmt.Errorf("baseline %s/%s: %s %s: %w: %s", p.Cluster, p.App, p.Tool, strings.Join(p.Args, " "), err, tail(stderr.String(), 500))
	}
	if out.n == 0 {
		return 0, rss, cpu, fmt.Errorf("baseline %s/%s: %s wrote nothing", p.Cluster, p.App, p.Tool)
	}
	return out.n, rss, cpu, nil
}

// SelfCPU returns this process's user+system CPU time so far.
func SelfCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("cpu time: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// countWriter counts and discards.
type countWriter struct{ n int64 }

func (w *countWriter) Write(b []byte) (int, error) {
	w.n += int64(len(b))
	return len(b), nil
}

// ResetPeakRSS resets this process's peak resident set size (Linux: writing
// 5 to /proc/self/clear_refs), so that PeakRSS measures from now on.
func ResetPeakRSS() error {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		return fmt.Errorf("reset peak RSS: %w", err)
	}
	return nil
}

// PeakRSS returns this process's peak resident set size in bytes (VmHWM).
func PeakRSS() (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("peak RSS: %w", err)
	}
	defer f.Close()
	return parsePeakRSS(f)
}

// parsePeakRSS reads the VmHWM line of a /proc/PID/status file, in bytes.
func parsePeakRSS(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("peak RSS: parse VmHWM %q: %w", rest, err)
		}
		return kb * 1024, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("peak RSS: %w", err)
	}
	return 0, errors.New("peak RSS: no VmHWM in /proc/self/status")
}
