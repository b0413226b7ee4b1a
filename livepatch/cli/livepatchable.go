package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

func newLivepatchableCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:    "livepatchable",
		Short:  "not implemented yet",
		Hidden: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("livepatchable: not implemented yet")
		},
	}
}
