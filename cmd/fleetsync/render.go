package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// Placeholder: replaced by the engineer who owns this verb.
func newRenderCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "render",
		Short: "render (in progress)",
		RunE: func(*cobra.Command, []string) error {
			return errors.New("render: not implemented yet")
		},
	}
}
