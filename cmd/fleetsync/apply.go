package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// Placeholder: replaced by the engineer who owns this verb.
func newApplyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "apply",
		Short: "apply (in progress)",
		RunE: func(*cobra.Command, []string) error {
			return errors.New("apply: not implemented yet")
		},
	}
}
