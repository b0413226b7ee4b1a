package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"ulp/livepatch/target"
)

func newMessagesCommand(g *globalOptions) *cobra.Command {
	var pid int
	cmd := &cobra.Command{
		Use:   "messages -p PID",
		Short: "Print the runtime's message ring of a process",
		Long: "messages prints the lines the runtime (libpulp.so.0) and the agent logged in\n" +
			"the process's message ring, oldest first, reading it without stopping the process.\n" + `
EXIT STATUS
  0  the messages were printed
  1  the process could not be read
  2  bad usage
`,
		Args: usageExactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("process") {
				return usageError(errors.New("messages needs -p PID"))
			}
			return runMessages(cmd.Context(), pid, cmd.OutOrStdout())
		},
	}
	cmd.Flags().IntVarP(&pid, "process", "p", 0, "the process `PID` to read")
	return cmd
}

func runMessages(ctx context.Context, pid int, w io.Writer) error {
	if pid <= 0 {
		return usageError(fmt.Errorf("bad pid %s", strconv.Itoa(pid)))
	}
	p, err := target.Open(pid)
	if err != nil {
		return errors.New(describe(pid, err))
	}
	lines, err := p.ReadRing(ctx)
	if err != nil {
		return err
	}
	for _, l := range lines {
		if _, err := fmt.Fprintln(w, l); err != nil {
			return err
		}
	}
	return nil
}
