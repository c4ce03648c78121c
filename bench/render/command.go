package renderbench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// BuildFleetsync builds the fleetsync command of this module into dir and
// returns the binary's path: the end-to-end benchmarks time it as a user
// runs it.
func BuildFleetsync(ctx context.Context, dir string) (string, error) {
	out := filepath.Join(dir, "fleetsync")
	if runtime.GOOS == "windows" {
		out += ".exe"
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "github.com/fleetsync/fleetsync/cmd/fleetsync")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build fleetsync: %w: %s", err, tail(stderr.String(), 2000))
	}
	return out, nil
}

// ProcessStats describes one run of a process.
type ProcessStats struct {
	Wall   time.Duration // start to exit
	CPU    time.Duration // user+system CPU time
	System time.Duration // of which system (kernel) time
	MaxRSS int64         // peak resident set size, bytes (0 when unknown)
	Stdout int64         // bytes written to standard output (discarded)
}

// RunProcess runs bin with args in dir, standard output discarded, and fails
// on a non-zero exit status (with the end of standard error).
//
// The peak RSS is the child's VmHWM, read from /proc every few milliseconds
// until it exits: the rusage of a child started by Go reports at least the
// parent's peak (Linux carries the high-water mark of the memory the child
// shared with the parent until exec over into the child's), which for a
// benchmark process is the size of the benchmark. Elsewhere, the rusage
// figure is used.
func RunProcess(ctx context.Context, dir, bin string, args ...string) (ProcessStats, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	var out countWriter
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return ProcessStats{}, fmt.Errorf("%s: %w", filepath.Base(bin), err)
	}
	done := make(chan struct{})
	hwm := make(chan int64, 1)
	go func() { hwm <- pollPeakRSS(cmd.Process.Pid, done) }()
	err := cmd.Wait()
	st := ProcessStats{Wall: time.Since(start), Stdout: out.n}
	close(done)
	st.MaxRSS = <-hwm
	if ps := cmd.ProcessState; ps != nil {
		st.CPU, st.System = ps.UserTime()+ps.SystemTime(), ps.SystemTime()
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok && st.MaxRSS == 0 {
			st.MaxRSS = ru.Maxrss * 1024 // kilobytes on Linux
		}
	}
	if err != nil {
		return st, fmt.Errorf("%s %s: %w: %s", filepath.Base(bin), strings.Join(args, " "), err, tail(stderr.String(), 1000))
	}
	return st, nil
}

// pollPeakRSS returns the largest VmHWM of process pid read until done is
// closed (0 when /proc cannot be read).
func pollPeakRSS(pid int, done <-chan struct{}) int64 {
	path := "/proc/" + strconv.Itoa(pid) + "/status"
	var peak int64
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for {
		if f, err := os.Open(path); err == nil {
			if v, err := parsePeakRSS(f); err == nil {
				peak = max(peak, v)
			}
			_ = f.Close()
		}
		select {
		case <-done:
			return peak
		case <-t.C:
		}
	}
}

// CreateFiles creates clusters x apps empty files in new folders under dir,
// the way `render --out` lays them out, and returns the time it took: what
// the filesystem alone costs the command, which on a shared machine varies
// more than anything the command does (ext4 scans past recently deleted
// inodes to allocate new ones).
func CreateFiles(dir string, clusters, apps int) (time.Duration, error) {
	start := time.Now()
	for c := range clusters {
		d := filepath.Join(dir, "c"+strconv.Itoa(c))
		if err := os.MkdirAll(d, 0o750); err != nil {
			return 0, err
		}
		for a := range apps {
			if err := os.WriteFile(filepath.Join(d, "a"+strconv.Itoa(a)+".yaml"), nil, 0o600); err != nil {
				return 0, err
			}
		}
	}
	return time.Since(start), nil
}
