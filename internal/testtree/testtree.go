// Package testtree writes file trees for tests.
package testtree

import (
	"os"
	"path/filepath"
	"testing"
)

// Write writes files (slash-separated path relative to dir -> content) into
// dir, creating folders as needed; a failure fails the test.
func Write(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for p, body := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
