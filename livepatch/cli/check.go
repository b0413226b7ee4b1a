package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"ulp/internal/escape"
	"ulp/livepatch/container"
	"ulp/livepatch/report"
	"ulp/livepatch/target"
)

func newCheckCommand(g *globalOptions) *cobra.Command {
	var pid int
	cmd := &cobra.Command{
		Use:   "check -p PID LIVEPATCH.so",
		Short: "Tell whether a livepatch is applied to a process",
		Long: "check reads the process's ledger of applied patches, without stopping it, and\n" +
			"tells whether the patch in LIVEPATCH.so (matched by its patch id) is applied.\n" + `
EXIT STATUS
  0  the patch is applied
  1  the patch is not applied
  2  error: bad usage, an unreadable container, or a process that cannot be read
`,
		Args: usageExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("process") {
				return usageError(errors.New("check needs -p PID"))
			}
			return runCheck(cmd.Context(), g, pid, args[0], cmd.OutOrStdout())
		},
	}
	cmd.Flags().IntVarP(&pid, "process", "p", 0, "the process `PID` to check")
	return cmd
}

// checkError is an error of `ulp check`: exit status 2, never 1, which
// means "not applied".
func checkError(err error) error { return &ExitError{Code: report.ExitUsage, Err: err} }

func runCheck(ctx context.Context, g *globalOptions, pid int, path string, w io.Writer) error {
	if pid <= 0 {
		return usageError(fmt.Errorf("bad pid %d", pid))
	}
	c, err := container.Open(path)
	if err != nil {
		return checkError(err)
	}
	p, err := target.Open(pid)
	if err != nil {
		return checkError(errors.New(describe(pid, err)))
	}
	l, err := p.ReadLedger(ctx)
	if err != nil {
		return checkError(err)
	}
	applied := l.Patch(c.Apply.ID) != nil
	if !g.quiet {
		state := "not applied"
		if applied {
			state = "applied"
		}
		fmt.Fprintf(w, "PID %d (%s): %s %s\n", pid, escape.Text(p.Comm), escape.Text(path), state)
	}
	if !applied {
		return &ExitError{Code: report.ExitFailure}
	}
	return nil
}
