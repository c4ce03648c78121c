package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// Placeholder: replaced by the engineer who owns this verb.
func newDiffCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "diff",
		Short: "diff (in progress)",
		RunE: func(*cobra.Command, []string) error {
			return errors.New("diff: not implemented yet")
		},
	}
}
