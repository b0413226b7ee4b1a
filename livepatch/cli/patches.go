package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

func newPatchesCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:    "patches",
		Short:  "not implemented yet",
		Hidden: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("patches: not implemented yet")
		},
	}
}
