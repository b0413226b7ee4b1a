package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

func newMessagesCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:    "messages",
		Short:  "not implemented yet",
		Hidden: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("messages: not implemented yet")
		},
	}
}
