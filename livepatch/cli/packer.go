package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

func newPackerCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:    "packer",
		Short:  "not implemented yet",
		Hidden: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("packer: not implemented yet")
		},
	}
}
