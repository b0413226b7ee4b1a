package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"ulp/fleet"
	"ulp/inventory"
)

func newRetryCommand(a *app) *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "retry",
		Short: "Rerun the last run on its hosts that did not succeed",
		Long: "retry reads the results file of the last apply, revert or push (--results,\n" +
			"by default $XDG_STATE_HOME/ulpfleet/last-run.ndjson) and runs the same\n" +
			"action with the same containers again on every host of that run that did\n" +
			"not succeed: failed (unreachable, upload failed, ...), with process errors,\n" +
			"interrupted or not attempted. The containers are read again from where the\n" +
			"run read them and must be unchanged (same sha256). Canaries and batches\n" +
			"come from the settings, as for any run (--canary 0 for none); --limit\n" +
			"narrows the hosts further. A run with --trusted is retried with that\n" +
			"policy folder unless --trusted names another, and a run with --activate\n" +
			"with --activate. The retry saves its own\n" +
			"results, so a second retry reruns what still failed.\n" + exitStatusHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runRetry(cmd.Context(), dryRun)
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan and change nothing")
	return cmd
}

// lastRun is what a results file says about its run.
type lastRun struct {
	Action     fleet.Action
	Containers []fleet.Artifact
	RevertAll  string
	// Trusted is the run's --trusted folder.
	Trusted string
	// Activate is the run's --activate.
	Activate bool
	// Retry lists the hosts whose state was not ok, in plan order.
	Retry []string
	// Hosts is the number of host records.
	Hosts int
}

// readResults parses a results file (the NDJSON of --json and --results).
func readResults(path string) (*lastRun, error) {
	data, err := readLimited(path, maxListSize)
	if err != nil {
		return nil, err
	}
	lr := &lastRun{}
	summaries := 0
	for i, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var rec struct {
			Schema, Type, Host, Action string
			State                      fleet.State
			Containers                 []fleet.Artifact
			RevertAll                  string `json:"revert_all"`
			Trusted                    string
			Activate                   bool
		}
		if err := json.Unmarshal(line, &rec); err != nil {
			return nil, fmt.Errorf("%s: line %d: not a results file: %w", path, i+1, err)
		}
		switch {
		case rec.Schema == hostSchema && rec.Type == "host":
			lr.Hosts++
			if rec.State != fleet.StateOK {
				lr.Retry = append(lr.Retry, rec.Host)
			}
		case rec.Schema == summarySchema && rec.Type == "summary":
			summaries++
			lr.Action, lr.Containers, lr.RevertAll = fleet.Action(rec.Action), rec.Containers, rec.RevertAll
			lr.Trusted, lr.Activate = rec.Trusted, rec.Activate
		default:
			return nil, fmt.Errorf("%s: line %d: not a record of a results file (schema %q)", path, i+1, rec.Schema)
		}
	}
	if summaries != 1 {
		return nil, fmt.Errorf("%s: %d summary records, want 1 (not a complete results file)", path, summaries)
	}
	switch lr.Action {
	case fleet.Apply, fleet.Revert, fleet.Push:
	default:
		return nil, fmt.Errorf("%s: action %q cannot be retried", path, lr.Action)
	}
	return lr, nil
}

func (a *app) runRetry(ctx context.Context, dryRun bool) error {
	if a.cfg.Results == "" {
		return usageError(errors.New("retry: no --results file"))
	}
	lr, err := readResults(a.cfg.Results)
	if err != nil {
		return usageError(fmt.Errorf("retry: %w", err))
	}
	if len(lr.Retry) == 0 {
		fmt.Fprintf(a.stdout, "retry: all %d hosts of the last %s succeeded; nothing to do\n", lr.Hosts, lr.Action)
		return nil
	}
	if a.cfg.Trusted == "" && lr.Trusted != "" {
		// A run that required signatures is retried requiring them.
		a.log.Info("retry: trust policy of the run", "trusted", lr.Trusted)
		a.cfg.Trusted = lr.Trusted
	}
	if lr.Activate && !a.cfg.Activate {
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
	var keep []inventory.Host
	for _, h := range hosts {
		if slices.Contains(lr.Retry, h.Name) {
			keep = append(keep, h)
		}
	}
	for _, name := range lr.Retry {
		if !slices.ContainsFunc(hosts, func(h inventory.Host) bool { return h.Name == name }) {
			a.log.Warn("retry: host of the last run not selected (not in the inventory, or outside --limit)", "host", name)
		}
	}
	if len(keep) == 0 {
		return usageError(fmt.Errorf("retry: %w: none of the hosts to retry (%s) is selected", inventory.ErrNoMatch, strings.Join(lr.Retry, ",")))
	}
	a.log.Info("retry", "action", lr.Action, "hosts", len(keep), "results", a.cfg.Results)
	p, err := a.planFor(lr.Action, keep, containers, lr.RevertAll)
	if err != nil {
		return err
	}
	return a.runPlan(ctx, p, dryRun)
}

// reread reads the run's containers again and checks that they did not
// change.
func (lr *lastRun) reread() ([]fleet.Artifact, error) {
	paths := make([]string, len(lr.Containers))
	for i, c := range lr.Containers {
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
		if art.SHA256 != lr.Containers[i].SHA256 {
			errs = append(errs, fmt.Errorf("retry: container %s changed since the run (sha256 %.16s, was %.16s)",
				art.Source, art.SHA256, lr.Containers[i].SHA256))
		}
	}
	if len(errs) > 0 {
		return nil, usageError(errors.Join(errs...))
	}
	return arts, nil
}
