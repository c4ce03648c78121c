package render

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// exampleRepo is the project's example fleet, rendered for every cluster.
const exampleRepo = "../../examples/fleet-repo"

type goldenCase struct {
	name, repo, want string
	loose            bool
}

func goldenCases(t *testing.T) []goldenCase {
	entries, err := os.ReadDir(filepath.Join("testdata", "golden"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []goldenCase
	for _, e := range entries {
		dir := filepath.Join("testdata", "golden", e.Name())
		_, err := os.Stat(filepath.Join(dir, "LOOSE"))
		cases = append(cases, goldenCase{
			name: e.Name(), repo: filepath.Join(dir, "repo"), want: filepath.Join(dir, "want"), loose: err == nil,
		})
	}
	if _, err := os.Stat(exampleRepo); err == nil {
		cases = append(cases, goldenCase{name: "example-fleet", repo: exampleRepo, want: filepath.Join("testdata", "example-fleet", "want")})
	}
	return cases
}

// TestGolden renders each testdata/golden/<case>/repo (and the example fleet)
// for every cluster and compares with want/<cluster>/<app>.yaml (or .err for
// a pair that must fail). Run with -update to rewrite the want files.
func TestGolden(t *testing.T) {
	for _, tc := range goldenCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			r := New(Options{})
			load := loadRepo
			if tc.loose {
				load = looseRepo
			}
			res := r.Render(context.Background(), load(t, tc.repo), Selection{})
			got := outputs(t, res)
			if *update {
				writeTree(t, tc.want, got)
				return
			}
			want := readTree(t, tc.want)
			if len(want) == 0 {
				t.Fatalf("no golden files in %s: run go test -run TestGolden -update", tc.want)
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("render output differs from %s (-want +got):\n%s", tc.want, d)
			}
			// Rendering again, serially and with a fresh Renderer, gives the same bytes.
			again := outputs(t, New(Options{Concurrency: 1}).Render(context.Background(), load(t, tc.repo), Selection{}))
			if d := cmp.Diff(got, again); d != "" {
				t.Errorf("second render differs (-first +second):\n%s", d)
			}
		})
	}
}
