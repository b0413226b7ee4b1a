package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"ulp/livepatch/elfsym"
)

func newLivepatchableCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "livepatchable FILE",
		Short: "Tell whether a library or executable can be live patched",
		Long: `livepatchable tells whether FILE (an ELF file, or an 'ulp extract' JSON
dump) has functions carrying the entry pad of -fpatchable-function-entry=16,14
(mechanism "pad"), and how many of them do. Exit status 0: yes; 1: no.`,
		Args: usageExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runLivepatchable(g, args[0], cmd.OutOrStdout())
		},
	}
}

func runLivepatchable(g *globalOptions, path string, stdout io.Writer) error {
	obj, err := elfsym.Load(path, elfsym.LoadOptions{})
	if err != nil {
		return usageError(err)
	}
	padded, total := obj.PaddedFuncs()
	if padded == 0 {
		if !g.quiet {
			fmt.Fprintf(stdout, "%s is not livepatchable: none of its %d functions has the entry pad of -fpatchable-function-entry=16,14\n", path, total)
		}
		return &ExitError{Code: ExitFailure}
	}
	if !g.quiet {
		fmt.Fprintf(stdout, "%s is livepatchable: %d of %d functions have the entry pad (mechanism: pad)\n", path, padded, total)
	}
	return nil
}
