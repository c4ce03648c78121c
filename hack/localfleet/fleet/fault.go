package fleet

import (
	"context"
	"fmt"
	"os"
	"time"
)

// process returns the process of f named name.
func (f *Fleet) process(name string) (*Process, error) {
	for _, p := range f.Processes {
		if p.Name == name {
			return p, nil
		}
	}
	return nil, fmt.Errorf("localfleet: no process %q in the fleet in %s", name, f.Dir)
}

// StopProcess stops one process of a running fleet (SIGTERM, then SIGKILL),
// for fault tests: a cluster's kube-apiserver or its own etcd (OwnEtcd).
func (f *Fleet) StopProcess(ctx context.Context, name string) error {
	p, err := f.process(name)
	if err != nil {
		return err
	}
	return stopPID(ctx, p.PID, p.Bin, p.done, 10*time.Second)
}

// StartProcess starts a stopped process again with the arguments it was
// first started with, detached like the rest of the fleet, and records its
// new PID in DIR/fleet.json and its pid file. It does not wait for it to be
// ready: the caller knows what ready means for its test.
func (f *Fleet) StartProcess(name string) error {
	p, err := f.process(name)
	if err != nil {
		return err
	}
	if alive(p.PID, p.Bin) {
		return fmt.Errorf("localfleet: %s (pid %d) is running", name, p.PID)
	}
	if err := spawn(f.Dir, p, false, p.Env, p.Args...); err != nil {
		return err
	}
	return f.save()
}

// Save records f in DIR/fleet.json (after StartProcess from another copy).
func (f *Fleet) Save() error {
	if _, err := os.Stat(f.Dir); err != nil {
		return err
	}
	return f.save()
}
