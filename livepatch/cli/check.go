package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

func newCheckCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:    "check",
		Short:  "not implemented yet",
		Hidden: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("check: not implemented yet")
		},
	}
}
