package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"ulp/internal/escape"
	"ulp/livepatch/dsc"
	"ulp/livepatch/elfsym"
	"ulp/livepatch/packer"
	"ulp/livepatch/report"
)

type packerOptions struct {
	out       string
	debugRoot string
}

func newPackerCommand(g *globalOptions) *cobra.Command {
	var opts packerOptions
	cmd := &cobra.Command{
		Use:   "packer DESC.dsc",
		Short: "Embed a description into a livepatch, making it a container",
		Long: `packer reads a livepatch description (.dsc), checks it against the livepatch
and the target (an ELF file or an 'ulp extract' JSON dump), and embeds the
.ulp, .ulp.rev and .ulp.comments sections into the livepatch: in place, or
into OUT with -o. The write is atomic. Problems with the description are
printed as file:line:col: error: message, with exit status 2, and nothing is
written. The format is specified in docs/container-format.md.`,
		Args: usageExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPacker(g, opts, args[0], cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVarP(&opts.out, "output", "o", "", "write the container to `OUT` instead of over the livepatch")
	cmd.Flags().StringVar(&opts.debugRoot, "debug-root", elfsym.DefaultDebugRoot, "search `DIR`/.build-id for the target's debuginfo (\"\" to disable)")
	return cmd
}

func runPacker(g *globalOptions, opts packerOptions, path string, stdout, stderr io.Writer) error {
	desc, err := dsc.ParseFile(path)
	if err != nil {
		if printDescErrors(err, stderr) {
			return &ExitError{Code: report.ExitUsage}
		}
		return usageError(err) // an unreadable description is invalid input too
	}
	res, err := packer.Pack(desc, packer.Options{Out: opts.out, DebugRoot: opts.debugRoot})
	if err != nil {
		if printDescErrors(err, stderr) {
			return &ExitError{Code: report.ExitUsage}
		}
		return err
	}
	for _, f := range res.Apply.Funcs {
		g.log.Debug("function", "old", f.Old, "old_offset", fmt.Sprintf("%#x", f.OldOffset),
			"new", f.New, "new_offset", fmt.Sprintf("%#x", f.NewOffset), "mechanism", f.Mechanism, "entry_offset", f.EntryOffset)
	}
	g.log.Debug("packed", "out", res.Out, "patch", res.Apply)
	if !g.quiet {
		fmt.Fprintf(stdout, "packed %s: patch %s, %d functions, %d references, target %s (build-id %x)\n",
			escape.Text(res.Out), res.Apply.ID, len(res.Apply.Funcs), len(res.Apply.Refs), escape.Text(res.Apply.Target.Name), res.Apply.Target.BuildID)
	}
	return nil
}

// printDescErrors prints the *dsc.Error values joined in err compiler-style,
// each with its source line and a caret, escaped (a description, the
// names of its files and the names in the files they name are not the
// agent's text). It reports whether there were any.
func printDescErrors(err error, stderr io.Writer) bool {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	printed := false
	for _, e := range errs {
		var de *dsc.Error
		if !errors.As(e, &de) {
			continue
		}
		fmt.Fprintln(stderr, escape.Text(de.Error()))
		if c := de.Caret(); c != "" {
			fmt.Fprintln(stderr, c)
		}
		printed = true
	}
	return printed
}

// usageExactArgs is cobra.ExactArgs with exit status 2 (bad usage).
func usageExactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return usageError(err)
		}
		return nil
	}
}
