// Package testfleet gives tests a real local fleet: Main (from TestMain)
// starts one with hack/localfleet's fleet package, or reuses the live fleet
// whose directory $FLEETSYNC_TESTFLEET_DIR names, and stops only what it
// started; Get, RESTConfig and Namespace hand each test its cluster access
// and a namespace of its own.
//
// It does not skip: a fleet that cannot start fails the test binary. It does
// not fake Kubernetes or registries.
package testfleet
