package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

func newExtractCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:    "extract",
		Short:  "not implemented yet",
		Hidden: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("extract: not implemented yet")
		},
	}
}
