package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

func newSetPatchableCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:    "set_patchable",
		Short:  "not implemented yet",
		Hidden: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("set_patchable: not implemented yet")
		},
	}
}
