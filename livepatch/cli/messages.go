package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/spf13/cobra"

	"ulp/internal/escape"
	"ulp/livepatch/report"
	"ulp/livepatch/target"
)

type messagesOptions struct {
	sel  selectFlags
	json bool
}

func newMessagesCommand(g *globalOptions) *cobra.Command {
	var opts messagesOptions
	cmd := &cobra.Command{
		Use:   "messages -p PID|NAME-GLOB [--json]",
		Short: "Print the runtime's message ring of processes",
		Long: "messages prints the lines the runtime (libpulp.so.0) and the agent logged in\n" +
			"the process's message ring, oldest first, reading it without stopping the process.\n" +
			"With -p PID it prints the lines as they are; with a glob (-p '*': every process\n" +
			"with the runtime) it prints a block per process, headed by its PID and name.\n" + `
EXIT STATUS
  0  the messages were printed
  1  a process could not be read
  2  bad usage
`,
		Args: usageExactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("process") {
				return usageError(errors.New("messages needs -p PID or -p NAME-GLOB"))
			}
			return runMessages(cmd.Context(), g, opts, cmd.OutOrStdout())
		},
	}
	opts.sel.add(cmd.Flags(), "the process `PID`, or the processes with the runtime whose name matches a glob")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print one JSON record per process (schema "+report.MessagesSchema+")")
	return cmd
}

func runMessages(ctx context.Context, g *globalOptions, opts messagesOptions, w io.Writer) error {
	isPID := opts.sel.isPID()
	seq, filter, err := opts.sel.scan()
	if err != nil {
		return err
	}
	found := slices.Collect(seq)
	if filter.Inaccessible > 0 {
		g.log.Info("processes not inspected: the caller may not read them", "count", filter.Inaccessible)
	}
	if len(found) == 0 {
		if err := opts.sel.noMatch(); err != nil {
			return err
		}
	}
	failed := 0
	enc := json.NewEncoder(w)
	for i, f := range found {
		rec := readMessages(ctx, f)
		switch {
		case opts.json:
			if err := enc.Encode(rec); err != nil {
				return err
			}
		case isPID:
			// One process named by PID: its lines as they are, or the error.
			if rec.Error != "" {
				return errors.New(escape.Text(rec.Error))
			}
			for _, l := range rec.Messages {
				if _, err := fmt.Fprintln(w, escape.Text(l)); err != nil {
					return err
				}
			}
		default:
			if i > 0 {
				fmt.Fprintln(w)
			}
			fmt.Fprintf(w, "%d (%s):\n", rec.PID, escape.Text(rec.Comm))
			if rec.Error != "" {
				fmt.Fprintf(w, "  error: %s\n", escape.Text(rec.Error))
			}
			for _, l := range rec.Messages {
				if _, err := fmt.Fprintf(w, "  %s\n", escape.Text(l)); err != nil {
					return err
				}
			}
		}
		if rec.Error != "" {
			failed++
		}
	}
	if opts.json {
		sum := report.ListSummary{Schema: report.MessagesSchema, Type: report.TypeSummary,
			Processes: len(found), Failed: failed, Inaccessible: filter.Inaccessible}
		if err := enc.Encode(sum); err != nil {
			return err
		}
	}
	if failed > 0 {
		return &ExitError{Code: report.ExitFailure}
	}
	return nil
}

// readMessages reads the message ring of one process without stopping it.
func readMessages(ctx context.Context, f target.Found) report.ProcessMessages {
	rec := report.ProcessMessages{Schema: report.MessagesSchema, PID: f.PID, Comm: f.Comm, Messages: []string{}}
	if f.Err != nil {
		rec.Error = describe(f.PID, f.Err)
		return rec
	}
	p, err := target.Open(f.PID)
	if err != nil {
		rec.Error = describe(f.PID, err)
		return rec
	}
	rec.Comm = p.Comm
	lines, err := p.ReadRing(ctx)
	if err != nil {
		rec.Error = err.Error()
		return rec
	}
	rec.Messages = append(rec.Messages, lines...)
	return rec
}
