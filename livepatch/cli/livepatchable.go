package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"ulp/internal/escape"
	"ulp/livepatch/elfsym"
	"ulp/livepatch/report"
)

func newLivepatchableCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "livepatchable FILE",
		Short: "Tell whether a library or executable can be live patched",
		Long: `livepatchable tells whether FILE (an ELF file, or an 'ulp extract' JSON
dump) has functions that can be live patched, and which mechanism each gets:
"pad" for a function carrying the entry pad of
-fpatchable-function-entry=16,14, "entry" for a function without the pad whose
entry can be overwritten with a 5-byte jump (distribution builds of glibc and
OpenSSL). With -v it lists every function with its mechanism, or why it has
none. Exit status 0: yes; 1: no.`,
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
	entry := obj.EntryFuncs()
	if g.verbose {
		seen := make(map[uint64]bool)
		for _, s := range obj.Symbols {
			name := escape.Text(s.Name) // the file's bytes, not ours
			if s.Type == elfsym.TypeIFunc {
				fmt.Fprintf(stdout, "%s\t%#x\tnone\tIFUNC: the process runs the implementation its resolver picks; patch that one\n", name, s.Offset)
				continue
			}
			if s.Type != elfsym.TypeFunc || seen[s.Offset] {
				continue
			}
			seen[s.Offset] = true
			switch {
			case s.Pad:
				fmt.Fprintf(stdout, "%s\t%#x\tpad\tentry+%d\n", name, s.Offset, s.EntryOffset)
			case s.Entry:
				fmt.Fprintf(stdout, "%s\t%#x\tentry\tentry+%d\n", name, s.Offset, s.EntryOffset)
			default:
				fmt.Fprintf(stdout, "%s\t%#x\tnone\t%s\n", name, s.Offset, escape.Text(s.Refused))
			}
		}
	}
	if padded+entry == 0 {
		if !g.quiet {
			fmt.Fprintf(stdout, "%s is not livepatchable: none of its %d functions has the entry pad of -fpatchable-function-entry=16,14 or an entry that can take a jump\n", escape.Text(path), total)
		}
		return &ExitError{Code: report.ExitFailure}
	}
	if !g.quiet {
		fmt.Fprintf(stdout, "%s is livepatchable: %d of %d functions have the entry pad (mechanism: pad), %d more can take an entry jump (mechanism: entry)\n",
			escape.Text(path), padded, total, entry)
	}
	return nil
}
