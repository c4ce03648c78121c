// Package v1alpha1 holds the Go types of the fleet repo's kinds (apiVersion
// fleetsync.dev/v1alpha1): Fleet, Cluster, App and ScalePolicy.
//
// The types are plain data with JSON tags; they are decoded strictly (unknown
// fields are errors) by pkg/fleet, and the JSON Schemas in schemas/ are
// generated from them. This package does no I/O and no validation beyond what
// the types themselves express.
package v1alpha1
