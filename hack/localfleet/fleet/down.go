package fleet

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// liveProcesses returns the processes of DIR's pid files that still run.
func liveProcesses(dir string) ([]pidEntry, error) {
	entries, err := readPIDFiles(dir)
	if err != nil {
		return nil, fmt.Errorf("localfleet: %s: %w", dir, err)
	}
	var live []pidEntry
	for _, e := range entries {
		if alive(e.PID, e.Bin) {
			live = append(live, e)
		}
	}
	return live, nil
}

// Stop stops the processes of a fleet started by this process, then cleans
// its directory like Down.
func (f *Fleet) Stop(ctx context.Context) error {
	entries := make([]pidEntry, 0, len(f.Processes))
	for _, p := range f.Processes {
		entries = append(entries, pidEntry{Name: p.Name, PID: p.PID, Bin: p.Bin, done: p.done})
	}
	errs := stopTiered(ctx, entries, io.Discard)
	errs = append(errs, Down(ctx, f.Dir, nil))
	return errors.Join(errs...)
}

// Down stops every process recorded in DIR's pid files (and any process of
// the cached binaries still running in DIR), and removes the run state:
// pid files, kubeconfigs, registries.json, env.sh, fleet.json, etcd and
// registry data. Logs stay. A missing or empty DIR is a no-op.
func Down(ctx context.Context, dir string, progress io.Writer) error {
	if progress == nil {
		progress = io.Discard
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("localfleet: dir: %w", err)
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	entries, err := readPIDFiles(dir)
	if err != nil {
		return fmt.Errorf("localfleet: %s: %w", dir, err)
	}
	entries = append(entries, strays(dir, entries)...)
	errs := stopTiered(ctx, entries, progress)
	if len(errs) > 0 {
		return fmt.Errorf("localfleet: down %s: %w", dir, errors.Join(errs...))
	}
	remove := []string{"pids", "fleet.json", "registries.json", "env.sh", "etcd", "registry"}
	if names, err := filepath.Glob(filepath.Join(dir, "*.kubeconfig")); err == nil {
		for _, n := range names {
			remove = append(remove, filepath.Base(n))
			remove = append(remove, strings.TrimSuffix(filepath.Base(n), ".kubeconfig"))
			remove = append(remove, "etcd-"+strings.TrimSuffix(filepath.Base(n), ".kubeconfig"))
		}
	}
	for _, r := range remove {
		if err := os.RemoveAll(filepath.Join(dir, r)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("localfleet: down %s: %w", dir, err)
	}
	return nil
}

// stopTiered stops processes in tiers, each tier in parallel.
func stopTiered(ctx context.Context, entries []pidEntry, progress io.Writer) []error {
	if progress == nil {
		progress = io.Discard
	}
	// Stop in tiers, each in parallel: clients of the API servers first,
	// then the API servers, then etcd (an API server whose etcd is gone
	// hangs in its shutdown).
	var errs []error
	for tier := range 3 {
		var batch []pidEntry
		for _, e := range entries {
			if stopTier(e.Name) == tier {
				batch = append(batch, e)
			}
		}
		stopped := make(chan error, len(batch))
		for _, e := range batch {
			go func() {
				if !alive(e.PID, e.Bin) {
					stopped <- nil
					return
				}
				start := time.Now()
				err := stopPID(ctx, e.PID, e.Bin, e.done, 10*time.Second)
				if err == nil {
					fmt.Fprintf(progress, "stopped %s (pid %d) in %s\n", e.Name, e.PID, time.Since(start).Round(10*time.Millisecond))
				}
				stopped <- err
			}()
		}
		for range batch {
			if err := <-stopped; err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errs
}

// stopTier orders the stop: 0 for API clients and registries, 1 for API
// servers, 2 for etcd.
func stopTier(name string) int {
	switch {
	case strings.HasSuffix(name, "kube-apiserver"):
		return 1
	case strings.HasPrefix(name, "etcd"):
		return 2
	default:
		return 0
	}
}

// strays finds processes running a cached localfleet binary with DIR as
// working directory that no pid file names (a crash between start and pid file).
func strays(dir string, known []pidEntry) []pidEntry {
	root, err := CacheRoot()
	if err != nil {
		return nil
	}
	if real, err := filepath.EvalSymlinks(root); err == nil {
		root = real
	}
	seen := map[int]bool{}
	for _, e := range known {
		seen[e.PID] = true
	}
	procs, _ := os.ReadDir("/proc")
	var out []pidEntry
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || seen[pid] {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", p.Name(), "cwd"))
		if err != nil || cwd != dir {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", p.Name(), "exe"))
		if err != nil || !strings.HasPrefix(exe, root+string(filepath.Separator)) {
			continue
		}
		out = append(out, pidEntry{Name: filepath.Base(exe), PID: pid, Bin: strings.TrimSuffix(exe, " (deleted)")})
	}
	return out
}

// Load reads the fleet recorded in DIR/fleet.json.
func Load(dir string) (*Fleet, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("localfleet: dir: %w", err)
	}
	data, err := os.ReadFile(stateFile(dir))
	if err != nil {
		return nil, fmt.Errorf("localfleet: no fleet in %s: %w", dir, err)
	}
	f := &Fleet{}
	if err := json.Unmarshal(data, f); err != nil {
		return nil, fmt.Errorf("localfleet: %s: %w", stateFile(dir), err)
	}
	return f, nil
}

// Live reports which processes of f run, and an error naming the first that
// does not.
func (f *Fleet) Live() error {
	for _, p := range f.Processes {
		if !alive(p.PID, p.Bin) {
			return fmt.Errorf("localfleet: %s (pid %d) is not running; log %s", p.Name, p.PID, p.Log)
		}
	}
	if len(f.Processes) == 0 {
		return fmt.Errorf("localfleet: no process recorded in %s", f.Dir)
	}
	return nil
}

// PrintTable prints what runs where: component, cluster, address, time to
// ready, resident memory, and the memory per cluster.
func (f *Fleet) PrintTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COMPONENT\tCLUSTER\tADDRESS\tPID\tSTATE\tSTART\tRSS")
	perCluster := map[string]int64{}
	var total int64
	for _, p := range f.sorted() {
		state, rss := "running", rssBytes(p.PID)
		if !alive(p.PID, p.Bin) {
			state, rss = "DEAD", 0
		}
		cluster := p.Cluster
		if cluster == "" {
			cluster = "(shared)"
		}
		perCluster[cluster] += rss
		total += rss
		address := p.Address
		if address == "" {
			address = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", p.Component, cluster, address, p.PID, state,
			p.StartTime.Round(10*time.Millisecond), mib(rss))
	}
	fmt.Fprintln(tw, "\t\t\t\t\t\t")
	for _, c := range f.Clusters {
		fmt.Fprintf(tw, "total\t%s\t%s\t\t\t\t%s\n", c.Name, c.Server, mib(perCluster[c.Name]))
	}
	fmt.Fprintf(tw, "total\t(shared)\tetcd + source registry\t\t\t\t%s\n", mib(perCluster["(shared)"]))
	fmt.Fprintf(tw, "total\tall\tstarted in %s\t\t\t\t%s\n", f.StartTime.Round(10*time.Millisecond), mib(total))
	return tw.Flush()
}

// sorted orders the processes: shared ones first, then each cluster in
// --clusters order, components in start order.
func (f *Fleet) sorted() []*Process {
	clusterRank := map[string]int{"": -1}
	for i, c := range f.Clusters {
		clusterRank[c.Name] = i
	}
	compRank := map[string]int{"etcd": 0, "kube-apiserver": 1, "kube-controller-manager": 2, "kube-scheduler": 3, "kwok": 4, "registry": 5}
	out := slices.Clone(f.Processes)
	slices.SortStableFunc(out, func(a, b *Process) int {
		if c := cmp.Compare(clusterRank[a.Cluster], clusterRank[b.Cluster]); c != 0 {
			return c
		}
		return cmp.Compare(compRank[a.Component], compRank[b.Component])
	})
	return out
}

// RSS returns the resident memory of the processes of one cluster ("" for the
// shared ones).
func (f *Fleet) RSS(cluster string) int64 {
	var n int64
	for _, p := range f.Processes {
		if p.Cluster == cluster {
			n += rssBytes(p.PID)
		}
	}
	return n
}

func mib(b int64) string { return fmt.Sprintf("%d MiB", b/(1<<20)) }
