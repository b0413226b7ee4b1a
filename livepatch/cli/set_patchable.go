package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"ulp/internal/escape"
	"ulp/livepatch/report"
	"ulp/livepatch/trigger"
)

func newSetPatchableCommand(g *globalOptions) *cobra.Command {
	var sel selectFlags
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "set_patchable -p PID|NAME-GLOB enable|disable",
		Short: "Allow or forbid live patching of a running process",
		Long: `set_patchable enables or disables live patching of process PID at run time.
While disabled, ulp trigger reports SKIPPED blocked by user for the process.
The change is written into the runtime's state while ulp holds the process
(no trigger can run at the same time); no thread is stopped. A process that
opted out through LIBPULP_DISABLE_ON_PATH/USERS/GROUPS, or whose runtime
disabled itself, stays disabled (exit status 1).

-p also takes a glob matched against the process name of every process that
preloads the runtime.
` + exitStatusHelp,
		Args: usageExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if sel.process == "" {
				return usageError(errors.New("set_patchable needs -p PID"))
			}
			var enable bool
			switch args[0] {
			case "enable":
				enable = true
			case "disable":
			default:
				return usageError(fmt.Errorf("set_patchable: %q is neither enable nor disable", args[0]))
			}
			return runSetPatchable(cmd.Context(), g, sel, enable, timeout, cmd.OutOrStdout())
		},
	}
	sel.add(cmd.Flags(), "the process: a `PID`, or a glob matched against process names")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "time allowed for each process")
	return cmd
}

func runSetPatchable(ctx context.Context, g *globalOptions, sel selectFlags, enable bool, timeout time.Duration, w io.Writer) error {
	seq, filter, err := sel.scan()
	if err != nil {
		return err
	}
	found := slices.Collect(seq)
	if filter.Inaccessible > 0 {
		g.log.Info("processes not inspected: the caller may not read them", "count", filter.Inaccessible)
	}
	if len(found) == 0 {
		return sel.noMatch()
	}
	word := "disabled"
	if enable {
		word = "enabled"
	}
	var errs []error
	for _, f := range found {
		pctx, cancel := context.WithTimeout(ctx, timeout)
		_, err := trigger.SetPatchable(pctx, f.PID, enable, trigger.Options{Log: g.log})
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("pid %d: %s", f.PID, describe(f.PID, err)))
			continue
		}
		if !g.quiet {
			fmt.Fprintf(w, "PID %d (%s): patching %s\n", f.PID, escape.Text(f.Comm), word)
		}
	}
	if len(errs) > 0 {
		return &ExitError{Code: report.ExitFailure, Err: errors.Join(errs...)}
	}
	return nil
}
