// Command fleetsync renders, plans, applies and watches a fleet repo across many
// Kubernetes clusters. Each subcommand turns its flags into one library call and
// prints the result; see DESIGN.md for the contract.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// Helm and Kustomize log doubts through the standard logger, which cannot
	// say which (cluster, app) they are about; render reports them itself as
	// each pair's warnings, so the raw lines are dropped.
	log.SetOutput(io.Discard)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err == nil {
		return
	}
	code := 1
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
		if ee.err == nil {
			os.Exit(code)
		}
		err = ee.err
	}
	fmt.Fprintln(os.Stderr, "Error:", err)
	os.Exit(code)
}
