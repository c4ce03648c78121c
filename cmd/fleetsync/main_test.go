package main

import (
	"os"
	"testing"

	"github.com/fleetsync/fleetsync/internal/testfleet"
)

// The end-to-end tests apply the example fleet to a real local fleet of three
// clusters; `make test` shares one fleet between every package.
func TestMain(m *testing.M) { os.Exit(testfleet.Main(m, "north", "south", "east")) }
