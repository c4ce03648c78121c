package fleet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Process is one running component of the fleet.
type Process struct {
	Name      string        `json:"name"`      // unique and file-safe: etcd, north-kube-apiserver, registry-source
	Component string        `json:"component"` // etcd, kube-apiserver, registry, ...
	Cluster   string        `json:"cluster,omitempty"`
	Address   string        `json:"address,omitempty"`
	PID       int           `json:"pid"`
	Bin       string        `json:"bin"`
	Log       string        `json:"log"`
	Started   time.Time     `json:"started"`
	StartTime time.Duration `json:"startTime"` // from spawn to ready
	// Args and Env are what it was started with, so that a fault test can
	// stop it and start it again (Fleet.Restart).
	Args []string `json:"args,omitempty"`
	Env  []string `json:"env,omitempty"`

	done chan struct{} // closed when the process exits; only in the process that started it
}

func pidDir(dir string) string { return filepath.Join(dir, "pids") }

func pidFile(dir, name string) string { return filepath.Join(pidDir(dir), name+".pid") }

// spawn starts bin with args in its own session, output to DIR/logs/<name>.log,
// and records DIR/pids/<name>.pid ("PID BIN") at once, so that a crashed run
// can be cleaned up.
func spawn(dir string, p *Process, attached bool, env []string, args ...string) error {
	logDir := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(pidDir(dir), 0o755); err != nil {
		return err
	}
	p.Log = filepath.Join(logDir, p.Name+".log")
	p.Args, p.Env = args, env
	logFile, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("%s: create log: %w", p.Name, err)
	}
	defer logFile.Close()
	// The process outlives this call (it is stopped by PID in down), so no ctx.
	cmd := exec.Command(p.Bin, args...) //nolint:noctx // see above
	cmd.Dir = dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if attached {
		// A test binary that dies takes its fleet with it.
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: start %s: %w", p.Name, p.Bin, err)
	}
	p.PID = cmd.Process.Pid
	p.Started = time.Now()
	p.done = make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	if err := os.WriteFile(pidFile(dir, p.Name), []byte(fmt.Sprintf("%d %s\n", p.PID, p.Bin)), 0o644); err != nil {
		return fmt.Errorf("%s: write pid file: %w", p.Name, err)
	}
	return nil
}

// exited reports whether a process started by this process has exited.
func (p *Process) exited() bool {
	if p.done == nil {
		return !alive(p.PID, p.Bin)
	}
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// failure describes a process that did not become ready.
func (p *Process) failure(what string, err error) error {
	state := "still running"
	if p.exited() {
		state = "exited"
	}
	return fmt.Errorf("%s (%s, address %s, pid %d, %s): %s: %w; log %s:\n%s",
		p.Name, p.Bin, p.Address, p.PID, state, what, err, p.Log, tail(p.Log, 15))
}

// alive reports whether pid runs bin (so that a reused pid is never killed).
func alive(pid int, bin string) bool {
	if pid <= 0 {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	if i := strings.LastIndexByte(string(stat), ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
		return false // zombie: exited, not reaped yet
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return false
	}
	exe = strings.TrimSuffix(exe, " (deleted)")
	return exe == bin
}

// rssBytes returns the resident memory of pid, 0 when unknown.
func rssBytes(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb * 1024
		}
	}
	return 0
}

// pidEntry is one DIR/pids/*.pid file.
type pidEntry struct {
	Name string
	PID  int
	Bin  string
	File string

	done chan struct{} // set for processes this process started
}

func readPIDFiles(dir string) ([]pidEntry, error) {
	files, err := filepath.Glob(filepath.Join(pidDir(dir), "*.pid"))
	if err != nil {
		return nil, err
	}
	var out []pidEntry
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read pid file: %w", err)
		}
		pidText, bin, _ := strings.Cut(strings.TrimSpace(string(data)), " ")
		pid, err := strconv.Atoi(pidText)
		if err != nil {
			return nil, fmt.Errorf("%s: bad pid file: %w", f, err)
		}
		out = append(out, pidEntry{Name: strings.TrimSuffix(filepath.Base(f), ".pid"), PID: pid, Bin: bin, File: f})
	}
	return out, nil
}

// stopPID stops a process and its process group: SIGTERM, then SIGKILL after
// grace. It returns once the process is gone.
func stopPID(ctx context.Context, pid int, bin string, done chan struct{}, grace time.Duration) error {
	if !alive(pid, bin) {
		return nil
	}
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	killed := false
	for {
		if done != nil {
			select {
			case <-done:
				return nil
			default:
			}
		} else if !alive(pid, bin) {
			return nil
		}
		if !killed && time.Now().After(deadline) {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			_ = syscall.Kill(pid, syscall.SIGKILL)
			killed = true
			deadline = time.Now().Add(grace)
		} else if killed && time.Now().After(deadline) {
			return fmt.Errorf("pid %d (%s) still running after SIGKILL", pid, bin)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stop pid %d (%s): %w", pid, bin, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

var errNotReady = errors.New("not ready")
