//go:build unix

package source

import (
	"errors"
	"syscall"
)

// tryLock takes an advisory lock on the open file without blocking; busy
// is true when another process (or handle) holds it.
func tryLock(fd uintptr, exclusive bool) (busy bool, err error) {
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	err = syscall.Flock(int(fd), how|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return true, nil
	}
	return false, err
}

func unlock(fd uintptr) error { return syscall.Flock(int(fd), syscall.LOCK_UN) }
