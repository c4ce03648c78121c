package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"testing/fstest"

	"github.com/fleetsync/fleetsync/pkg/fleet"
)

func ExampleLoad() {
	repo := fstest.MapFS{
		"clusters/north.yaml": {Data: []byte(`apiVersion: fleetsync.dev/v1alpha1
kind: Cluster
metadata:
  name: north
  labels: {env: prod}
`)},
		"apps/mes/app.yaml": {Data: []byte(`apiVersion: fleetsync.dev/v1alpha1
kind: App
metadata:
  name: mes
spec:
  source: {}
  targets:
    clusterSelector: {matchLabels: {env: prod}}
  dependsOn: [platform]
  drift: ignore
`)},
	}
	_, err := fleet.Load(context.Background(), repo)
	var problems fleet.Problems
	if errors.As(err, &problems) {
		for _, p := range problems {
			fmt.Println(p)
		}
	}
	// Output:
	// apps/mes/app.yaml:6: spec.source: exactly one of kustomize or helm must be set
	// apps/mes/app.yaml:9: spec.dependsOn[0]: unknown app "platform"
	// apps/mes/app.yaml:10: spec.drift: unknown drift mode "ignore": want report or correct
}
