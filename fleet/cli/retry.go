package cli

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"ulp/fleet"
	"ulp/inventory"
)

func newRetryCommand(a *app) *cobra.Command {
	var dryRun bool
	var runID string
	cmd := &cobra.Command{
		Use:   "retry",
		Short: "Rerun the last run on its hosts that did not succeed",
		Long: "retry reads the results file of the last apply, revert or push (--results,\n" +
			"by default $XDG_STATE_HOME/ulpfleet/last-run.ndjson) and runs the same\n" +
			"action with the same containers again on every host of that run that did\n" +
			"not succeed: failed (unreachable, upload failed, ...), with process errors,\n" +
			"interrupted, not attempted, or in flight when the controller died (the\n" +
			"file gets each host's record as the host finishes). The containers are read again from where the\n" +
			"run read them and must be unchanged (same sha256). Canaries and batches\n" +
			"come from the settings, as for any run (--canary 0 for none); --limit\n" +
			"narrows the hosts further. A run with --trusted is retried with that\n" +
			"policy folder unless --trusted names another, and a run with --activate\n" +
			"with --activate. A results file of a run over another inventory is\n" +
			"refused unless --run names its run id. The retry saves its own\n" +
			"results, so a second retry reruns what still failed.\n" + exitStatusHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runRetry(cmd.Context(), dryRun, runID)
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan and change nothing")
	cmd.Flags().StringVar(&runID, "run", "", "retry the run `ID` of the results file even when it ran over another inventory")
	return cmd
}

func (a *app) runRetry(ctx context.Context, dryRun bool, runID string) error {
	if a.cfg.Results == "" {
		return usageError(errors.New("retry: no --results file"))
	}
	lr, err := readResults(a.cfg.Results)
	if err != nil {
		return usageError(fmt.Errorf("retry: %w", err))
	}
	run := &lr.Run
	inv, _ := filepath.Abs(a.cfg.Inventory)
	switch {
	case runID != "" && runID != run.RunID:
		return usageError(fmt.Errorf("retry: %s holds run %s, not %s", a.cfg.Results, run.RunID, runID))
	case runID == "" && a.cfg.Inventory != "" && inv != run.Inventory:
		return usageError(fmt.Errorf("retry: %s holds run %s (%s of %s over %s, limit %q), another inventory than %s; --run %s retries it anyway",
			a.cfg.Results, run.RunID, run.Action, run.Started.Format(time.RFC3339), run.Inventory, run.Limit, inv, run.RunID))
	}
	if !lr.Finished {
		a.log.Warn("retry: the run did not finish (its controller was killed?): hosts without a record are retried",
			"run", run.RunID, "recorded", lr.Recorded, "planned", len(run.Hosts))
	}
	if len(lr.Retry) == 0 {
		fmt.Fprintf(a.stdout, "retry: all %d hosts of the last %s succeeded; nothing to do\n", len(run.Hosts), run.Action)
		return nil
	}
	if a.cfg.Trusted == "" && run.Trusted != "" {
		// A run that required signatures is retried requiring them.
		a.log.Info("retry: trust policy of the run", "trusted", run.Trusted)
		a.cfg.Trusted = run.Trusted
	}
	if run.Activate && !a.cfg.Activate {
		// The hosts left behind get the patch-on-start folder updated too.
		a.log.Info("retry: --activate of the run")
		a.cfg.Activate = true
	}
	containers, err := lr.reread()
	if err != nil {
		return err
	}
	hosts, err := a.hosts()
	if err != nil {
		return err
	}
	retry := make(map[string]bool, len(lr.Retry))
	for _, h := range lr.Retry {
		retry[h] = true
	}
	var keep []inventory.Host
	selected := make(map[string]bool, len(hosts))
	for _, h := range hosts {
		selected[h.Name] = true
		if retry[h.Name] {
			keep = append(keep, h)
		}
	}
	for _, name := range lr.Retry {
		if !selected[name] {
			a.log.Warn("retry: host of the last run not selected (not in the inventory, or outside --limit)", "host", name)
		}
	}
	if len(keep) == 0 {
		return usageError(fmt.Errorf("retry: %w: none of the %d hosts to retry is selected", inventory.ErrNoMatch, len(lr.Retry)))
	}
	a.log.Info("retry", "run", run.RunID, "action", run.Action, "hosts", len(keep), "results", a.cfg.Results)
	p, err := a.planFor(fleet.Action(run.Action), keep, containers, run.RevertAll)
	if err != nil {
		return err
	}
	return a.runPlan(ctx, p, dryRun)
}

// reread reads the run's containers again and checks that they did not
// change.
func (lr *lastRun) reread() ([]fleet.Artifact, error) {
	paths := make([]string, len(lr.Run.Containers))
	for i, c := range lr.Run.Containers {
		if c.Source == "" {
			return nil, usageError(fmt.Errorf("retry: container %s: the results file does not say where it was read from", c.Name))
		}
		paths[i] = c.Source
	}
	arts, err := readContainers(paths)
	if err != nil {
		return nil, err
	}
	var errs []error
	for i, art := range arts {
		if art.SHA256 != lr.Run.Containers[i].SHA256 {
			errs = append(errs, fmt.Errorf("retry: container %s changed since the run (sha256 %.16s, was %.16s)",
				art.Source, art.SHA256, lr.Run.Containers[i].SHA256))
		}
	}
	if len(errs) > 0 {
		return nil, usageError(errors.Join(errs...))
	}
	return arts, nil
}
