// Package cli is the cobra command tree of ulpfleet. It is the only package
// of the fleet side that reads settings (viper) and builds loggers.
package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// Run executes the ulpfleet command tree with args and returns the exit status.
func Run(args []string) int {
	root := &cobra.Command{
		Use:           "ulpfleet",
		Short:         "Roll livepatches out to a fleet of hosts over SSH",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		fmt.Fprintf(os.Stderr, "ulpfleet: %v\n", err)
		return 2
	}
	return 0
}
