package fleet

import (
	"context"
	"fmt"
	"net"
	"strconv"
)

// Stable default ports, used when free (see docs/localfleet.md).
const (
	DefaultEtcdPort       = 2379 // peer port: DefaultEtcdPort+1
	DefaultAPIServerPort  = 6443 // cluster i of --clusters (from 0) gets 6443+i
	DefaultSourceRegistry = 5000
)

// DefaultMirrorPorts are the mirror registry ports of the example clusters.
func DefaultMirrorPorts() map[string]int {
	return map[string]int{"north": 5001, "south": 5002, "east": 5003}
}

// portPicker hands out loopback ports, preferring stable ones when free and
// never handing out the same port twice.
type portPicker struct {
	taken map[int]bool
}

func newPortPicker() *portPicker { return &portPicker{taken: map[int]bool{}} }

// pick returns want when it is free, else a free port chosen by the kernel.
func (pp *portPicker) pick(ctx context.Context, want int) (int, error) {
	if want > 0 && !pp.taken[want] && portFree(ctx, want) {
		pp.taken[want] = true
		return want, nil
	}
	for range 100 {
		l, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("find a free port on 127.0.0.1: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if !pp.taken[port] {
			pp.taken[port] = true
			return port, nil
		}
	}
	return 0, fmt.Errorf("no free port on 127.0.0.1")
}

func portFree(ctx context.Context, port int) bool {
	l, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr(port))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

func addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }
