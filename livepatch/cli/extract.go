package cli

import (
	"io"

	"github.com/spf13/cobra"

	"ulp/internal/atomicfile"
	"ulp/livepatch/elfsym"
)

type extractOptions struct {
	out       string
	debuginfo string
	debugRoot string
}

func newExtractCommand(g *globalOptions) *cobra.Command {
	var opts extractOptions
	cmd := &cobra.Command{
		Use:   "extract FILE",
		Short: "Dump a library's name, build-id and symbols as JSON",
		Long: `extract writes the name, GNU build-id and defined symbols (offset, size, type,
binding, entry pad) of FILE as JSON (schema ` + elfsym.Schema + `), so that a
livepatch can be packed against the dump instead of the binary: name the
dump in the description's @ line. Symbols of a separate debuginfo file (-d,
or found under --debug-root by build-id) are merged in.`,
		Args: usageExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runExtract(opts, args[0], cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVarP(&opts.out, "output", "o", "-", "write the JSON to `OUT` (- for stdout)")
	cmd.Flags().StringVarP(&opts.debuginfo, "debuginfo", "d", "", "merge the symbols of the debuginfo `FILE`")
	cmd.Flags().StringVar(&opts.debugRoot, "debug-root", elfsym.DefaultDebugRoot, "search `DIR`/.build-id for debuginfo (\"\" to disable)")
	return cmd
}

func runExtract(opts extractOptions, path string, stdout io.Writer) error {
	obj, err := elfsym.Load(path, elfsym.LoadOptions{Debuginfo: opts.debuginfo, DebugRoot: opts.debugRoot})
	if err != nil {
		return usageError(err)
	}
	if opts.out == "-" {
		return obj.WriteJSON(stdout)
	}
	return atomicfile.Write(opts.out, 0o644, obj.WriteJSON)
}
