package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

func newTriggerCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:    "trigger",
		Short:  "not implemented yet",
		Hidden: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("trigger: not implemented yet")
		},
	}
}
