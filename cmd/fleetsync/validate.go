package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// Placeholder: replaced by the engineer who owns this verb.
func newValidateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate",
		Short: "validate (in progress)",
		RunE: func(*cobra.Command, []string) error {
			return errors.New("validate: not implemented yet")
		},
	}
}
