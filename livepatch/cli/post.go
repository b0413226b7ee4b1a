package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

func newPostCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:    "post",
		Short:  "not implemented yet",
		Hidden: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("post: not implemented yet")
		},
	}
}
