package main

import (
	"strconv"

	"github.com/spf13/cobra"
)

// exitError carries the exit status a verb wants; err may be nil when the verb
// already printed everything (e.g. diff found drift).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return "exit status " + strconv.Itoa(e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "fleetsync",
		Short:         "GitOps for fleets of Kubernetes clusters",
		Long:          "fleetsync renders one fleet repo into per-cluster manifests, plans changes for pull requests, applies them with server-side apply and reports drift.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newValidateCmd(),
		newRenderCmd(),
		newPlanCmd(),
		newApplyCmd(),
		newDiffCmd(),
		newRolloutCmd(),
		newMirrorCmd(),
		newRunCmd(),
		newStatusCmd(),
		newServeCmd(),
	)
	return root
}
