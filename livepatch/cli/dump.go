package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

func newDumpCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:    "dump",
		Short:  "not implemented yet",
		Hidden: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("dump: not implemented yet")
		},
	}
}
