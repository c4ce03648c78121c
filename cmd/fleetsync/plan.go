package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// Placeholder: replaced by the engineer who owns this verb.
func newPlanCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "plan",
		Short: "plan (in progress)",
		RunE: func(*cobra.Command, []string) error {
			return errors.New("plan: not implemented yet")
		},
	}
}
