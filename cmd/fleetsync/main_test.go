package main

import (
	"os"
	"testing"

	"github.com/fleetsync/fleetsync/internal/testfleet"
)

// envRunMain makes the test binary run fleetsync's main instead of the tests,
// so that end-to-end tests can start (and SIGKILL) a real fleetsync process.
const envRunMain = "FLEETSYNC_TEST_RUN_MAIN"

// The end-to-end tests apply the example fleet to a real local fleet of three
// clusters, and the agents coordinate through a fourth, the hub; `make test`
// shares one fleet between every package.
func TestMain(m *testing.M) {
	if os.Getenv(envRunMain) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(testfleet.Main(m, "north", "south", "east", "west", "center", "hub"))
}
