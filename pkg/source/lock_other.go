//go:build !unix

package source

// tryLock is a no-op where flock is unavailable: only one process may use a
// cache directory at a time there.
func tryLock(uintptr, bool) (bool, error) { return false, nil }

func unlock(uintptr) error { return nil }
