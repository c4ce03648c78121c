package source

import (
	"context"
	"fmt"
	"os"
	"time"
)

// lockPollInterval is how often a busy lock is retried.
const lockPollInterval = 20 * time.Millisecond

// fileLock is an advisory lock on a file next to a cache entry; it
// serialises fetches of processes sharing the cache directory.
type fileLock struct {
	f *os.File
}

// acquireLock waits (until ctx is done) for the lock at path.
func acquireLock(ctx context.Context, path string, exclusive bool) (*fileLock, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600) //nolint:gosec // path is in the cache dir the user chose
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	t := time.NewTicker(lockPollInterval)
	defer t.Stop()
	for {
		busy, err := tryLock(f.Fd(), exclusive)
		if err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if !busy {
			return &fileLock{f: f}, nil
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, ctx.Err())
		case <-t.C:
		}
	}
}

func (l *fileLock) release() error {
	err := unlock(l.f.Fd())
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	return err
}
