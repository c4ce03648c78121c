package source_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/fleetsync/fleetsync/pkg/source"
)

// A plain directory (not a git repository) is read as it is, without a ref.
func ExampleResolve() {
	dir, err := os.MkdirTemp("", "fleet")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "fleet.yaml"), []byte("kind: Fleet\n"), 0o644); err != nil {
		fmt.Println(err)
		return
	}

	rev, repo, err := source.Resolve(context.Background(), dir, "", source.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer repo.Close()
	data, err := fs.ReadFile(rev.FS, "fleet.yaml")
	fmt.Printf("commit %q, fleet.yaml %q, error %v\n", rev.Commit, data, err)

	// A plain directory has no refs.
	_, err = repo.Open(context.Background(), "main")
	fmt.Println(errors.Is(err, source.ErrNotFound))
	// Output:
	// commit "", fleet.yaml "kind: Fleet\n", error <nil>
	// true
}
