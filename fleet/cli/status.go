package cli

import (
	"context"
	"errors"

	"github.com/spf13/cobra"

	"ulp/fleet"
)

func newStatusCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "status",
		Aliases: []string{"report"},
		Short:   "Report which hosts and processes carry which patches",
		Long: "status uploads the agent where it is missing and runs `ulp patches --json`\n" +
			"on every selected host (all at once, no canary), then prints per host the\n" +
			"processes with the runtime and the patches they carry, and per patch how\n" +
			"many hosts and processes carry it.\n" + exitStatusHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runStatus(cmd.Context())
		},
	}
}

func (a *app) runStatus(ctx context.Context) error {
	p, err := a.plan(fleet.Status, nil, "")
	if err != nil {
		return err
	}
	res, runErr := a.execute(ctx, p, nil)
	if res == nil {
		return runErr
	}
	rep := fleet.Aggregate(res)
	if a.cfg.JSON {
		err = writeJSON(a.stdout, rep)
	} else {
		err = writeReportText(a.stdout, rep)
	}
	return errors.Join(summaryError(res, runErr), err)
}
