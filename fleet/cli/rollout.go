package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"ulp/fleet"
	"ulp/inventory"
)

// rolloutOptions are the flags of apply, revert and plan.
type rolloutOptions struct {
	revertAll string
	dryRun    bool
	revert    bool // plan only: plan a revert
}

func newApplyCommand(a *app) *cobra.Command {
	var o rolloutOptions
	cmd := &cobra.Command{
		Use:   "apply PATCH.so...",
		Short: "Apply livepatch containers on every selected host, canaries first",
		Long: "apply uploads the agent and the containers to every selected host and runs\n" +
			"`ulp trigger --json` there for each container, which patches every process\n" +
			"that has the runtime loaded. The canary wave(s) run first; when more hosts\n" +
			"fail than --max-failures allows, the rollout stops before the next wave.\n" +
			"--revert-all=LIB reverts every patch on LIB in the same stop window as the\n" +
			"first container (atomic replace).\n" + exitStatusHelp,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runRollout(cmd.Context(), fleet.Apply, args, o)
		},
	}
	cmd.Flags().StringVar(&o.revertAll, "revert-all", "", "also revert every patch on library `LIB` (atomic replace)")
	cmd.Flags().BoolVar(&o.dryRun, "dry-run", false, "print the plan and change nothing")
	return cmd
}

func newRevertCommand(a *app) *cobra.Command {
	var o rolloutOptions
	cmd := &cobra.Command{
		Use:   "revert [PATCH.so...] [--revert-all=LIB]",
		Short: "Revert livepatches on every selected host, canaries first",
		Long: "revert uploads the containers and runs `ulp trigger --json --revert` for\n" +
			"each (last first), then `--revert-all=LIB` when given.\n" + exitStatusHelp,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 && o.revertAll == "" {
				return usageError(errors.New("revert needs containers or --revert-all=LIB"))
			}
			return a.runRollout(cmd.Context(), fleet.Revert, args, o)
		},
	}
	cmd.Flags().StringVar(&o.revertAll, "revert-all", "", "revert every patch on library `LIB`")
	cmd.Flags().BoolVar(&o.dryRun, "dry-run", false, "print the plan and change nothing")
	return cmd
}

func newPushCommand(a *app) *cobra.Command {
	var o rolloutOptions
	cmd := &cobra.Command{
		Use:   "push [PATCH.so...]",
		Short: "Upload the agent and containers to every selected host without applying anything",
		Long: "push stages the agent and the containers on every selected host (content-\n" +
			"addressed: what is already there is not sent again), canaries first, so\n" +
			"that a later apply only triggers.\n" + exitStatusHelp,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runRollout(cmd.Context(), fleet.Push, args, o)
		},
	}
	cmd.Flags().BoolVar(&o.dryRun, "dry-run", false, "print the plan and change nothing")
	return cmd
}

func newPlanCommand(a *app) *cobra.Command {
	var o rolloutOptions
	cmd := &cobra.Command{
		Use:   "plan [PATCH.so...] [--revert] [--revert-all=LIB]",
		Short: "Print what apply (or revert) would do on every host, without connecting",
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.dryRun = true
			action := fleet.Apply
			if o.revert {
				action = fleet.Revert
			}
			return a.runRollout(cmd.Context(), action, args, o)
		},
	}
	cmd.Flags().StringVar(&o.revertAll, "revert-all", "", "revert every patch on library `LIB`")
	cmd.Flags().BoolVar(&o.revert, "revert", false, "plan a revert instead of an apply")
	return cmd
}

// plan builds the plan of action from the settings and arguments: the
// hosts of the inventory and --limit, the containers named by args.
func (a *app) plan(action fleet.Action, args []string, revertAll string) (*fleet.Plan, error) {
	hosts, err := a.hosts()
	if err != nil {
		return nil, err
	}
	containers, err := readContainers(args)
	if err != nil {
		return nil, err
	}
	return a.planFor(action, hosts, containers, revertAll)
}

// planFor plans action over hosts with the settings' canaries and batches.
func (a *app) planFor(action fleet.Action, hosts []inventory.Host, containers []fleet.Artifact, revertAll string) (*fleet.Plan, error) {
	agent, err := a.agent(a.cfg)
	if err != nil {
		return nil, err
	}
	canary, batch := a.cfg.Canary, a.cfg.Batch
	if action == fleet.Status || action == fleet.Ping || action == fleet.Clean {
		canary, batch = nil, nil
	}
	trusted, err := a.trustPolicy(action)
	if err != nil {
		return nil, err
	}
	p, err := fleet.NewPlan(hosts, fleet.Options{
		Action:      action,
		Agent:       agent,
		Containers:  containers,
		RevertAll:   revertAll,
		StagingDir:  a.cfg.StagingDir,
		Canary:      canary,
		Batch:       batch,
		Sudo:        a.cfg.Sudo,
		HealthCheck: a.cfg.HealthCheck,
		Jump:        a.cfg.Jump,
		Trusted:     trusted,
		Activate:    a.cfg.Activate,
	})
	if errors.Is(err, fleet.ErrUntrusted) {
		return nil, usageError(err)
	}
	return p, err
}

// execute runs p with the settings' limits, showing progress on a
// terminal; observe, when set, also sees every event.
func (a *app) execute(ctx context.Context, p *fleet.Plan, observe func(fleet.Event)) (*fleet.Result, error) {
	d, err := a.dialer(a.cfg, a.log)
	if err != nil {
		return nil, err
	}
	maxFail, _ := a.cfg.maxFailPercent() // checked by validate
	r := &fleet.Rollout{
		Dialer:         d,
		MaxFailPercent: maxFail,
		Parallel:       a.cfg.Parallel,
		UploadParallel: a.cfg.UploadParallel,
		MaxFailures:    a.cfg.MaxFailures,
		HostTimeout:    a.cfg.Timeout,
		Log:            a.log,
	}
	r.Observe = observe
	if a.tty && !a.cfg.JSON {
		pr := &progress{w: a.stderr, plan: p}
		r.Observe = func(e fleet.Event) {
			if observe != nil {
				observe(e)
			}
			pr.observe(e)
		}
		defer pr.clear()
	}
	if p.Action == fleet.Apply || p.Action == fleet.Revert || p.Action == fleet.Push {
		a.log.Info("rollout", "action", p.Action, "hosts", p.NumHosts(), "waves", len(p.Waves))
	}
	return r.Run(ctx, p)
}

func (a *app) runRollout(ctx context.Context, action fleet.Action, args []string, o rolloutOptions) error {
	p, err := a.plan(action, args, o.revertAll)
	if err != nil {
		return err
	}
	return a.runPlan(ctx, p, o.dryRun)
}

// runPlan prints p (dryRun) or runs it: the run record first, then each
// host's record as the host finishes (on stdout with --json, appended and
// synced to the results file), and the results at the end.
func (a *app) runPlan(ctx context.Context, p *fleet.Plan, dryRun bool) error {
	action := p.Action
	if dryRun {
		if a.cfg.JSON {
			return writeJSON(a.stdout, p)
		}
		return p.WriteText(a.stdout)
	}
	run := a.newRunRecord(p)
	var rw *resultsWriter
	if a.cfg.Results != "" {
		var err error
		rw, err = createResults(a.cfg.Results, run)
		if errors.Is(err, errResultsBusy) && a.defaultResults {
			// Another run (another terminal) writes the default file: this
			// run keeps its own record next to it rather than fail.
			alt := strings.TrimSuffix(a.cfg.Results, ".ndjson") + "-" + run.RunID + ".ndjson"
			a.log.Warn("results: the default results file is in use by another run; this run's go to another file (retry --results FILE)",
				"results", alt)
			a.cfg.Results = alt
			rw, err = createResults(alt, run)
		}
		if err != nil {
			return usageError(fmt.Errorf("results: %w (--results '' runs without saving them)", err))
		}
	}
	index := planIndex(p)
	var observers []func(fleet.Event)
	var stream *jsonStream
	if a.cfg.JSON {
		stream = &jsonStream{enc: json.NewEncoder(a.stdout), index: index}
		stream.err = stream.enc.Encode(run)
		observers = append(observers, stream.observe)
	}
	if rw != nil {
		observers = append(observers, func(e fleet.Event) {
			if e.Kind == fleet.HostDone {
				if err := rw.append(newHostRecord(index[e.Host], e.Result)); err != nil {
					a.log.Warn("results: host record not saved", "host", e.Host, "err", err)
				}
			}
		})
	}
	res, runErr := a.execute(ctx, p, func(e fleet.Event) {
		for _, o := range observers {
			o(e)
		}
	})
	if res == nil {
		return runErr
	}
	var err error
	if stream != nil {
		err = errors.Join(stream.err, writeResultJSON(a.stdout, p, res, true))
	} else {
		err = writeResultText(a.stdout, p, res)
	}
	if rw != nil {
		if serr := rw.finish(p, res); serr != nil {
			// The rollout's outcome does not depend on it: warn, do not fail.
			a.log.Warn("results not saved completely", "err", serr)
		}
	}
	errs := []error{summaryError(res, runErr), err}
	if action == fleet.Apply && a.cfg.AutoRevert && errors.Is(runErr, fleet.ErrStopped) {
		errs = append(errs, a.autoRevert(ctx, p, res))
	}
	return errors.Join(errs...)
}

// autoRevert reverts the containers of a stopped apply on the canary hosts
// that ran the agent (whatever failed there afterwards: the health check,
// a process, the connection or the host's timeout), in one wave.
func (a *app) autoRevert(ctx context.Context, p *fleet.Plan, res *fleet.Result) error {
	var hosts []inventory.Host
	i := 0
	for _, w := range p.Waves {
		for _, hp := range w.Hosts {
			if w.Canary && res.Hosts[i].AgentRan {
				hosts = append(hosts, hp.Host)
			}
			i++
		}
	}
	if len(hosts) == 0 {
		a.log.Info("auto-revert: no canary host ran the agent")
		return nil
	}
	rp, err := fleet.NewPlan(hosts, fleet.Options{Action: fleet.Revert, Agent: p.Agent, Containers: p.Containers,
		StagingDir: a.cfg.StagingDir, Sudo: a.cfg.Sudo, Jump: a.cfg.Jump, Activate: p.Activate}) // no health check: it failed already
	if err != nil {
		return err
	}
	a.log.Info("auto-revert", "hosts", len(hosts))
	if !a.cfg.JSON {
		fmt.Fprintln(a.stdout, "auto-revert of the canary hosts:")
	}
	rres, runErr := a.execute(ctx, rp, nil)
	if rres == nil {
		return runErr
	}
	if runErr != nil {
		// Reported but not classified: the exit status is the stopped apply's.
		runErr = fmt.Errorf("auto-revert: %v", summaryError(rres, runErr))
	}
	if a.cfg.JSON {
		err = writeResultJSON(a.stdout, rp, rres, false)
	} else {
		err = writeResultText(a.stdout, rp, rres)
	}
	return errors.Join(runErr, err)
}

// summaryError condenses the rollout's joined error (every host's error is
// already in the output) into one line that unwraps to err, for ExitCode to
// classify.
func summaryError(res *fleet.Result, err error) error {
	if err == nil {
		return nil
	}
	c := res.Counts()
	bad := c[fleet.StateError] + c[fleet.StateFailed]
	msg := fmt.Sprintf("%d of %d hosts failed", bad, len(res.Hosts))
	switch {
	case errors.Is(err, context.Canceled):
		msg = fmt.Sprintf("interrupted: %d hosts interrupted, %d not attempted; %s", c[fleet.StateInterrupted], c[fleet.StateNotAttempted], msg)
	case errors.Is(err, fleet.ErrStopped):
		msg = fmt.Sprintf("stopped (%s); %d hosts not attempted", res.Stopped, c[fleet.StateNotAttempted])
	}
	return &rolloutError{msg: msg, err: err}
}

// rolloutError is a rollout's outcome in one line; it unwraps to the
// rollout's joined error.
type rolloutError struct {
	msg string
	err error
}

func (e *rolloutError) Error() string { return e.msg }
func (e *rolloutError) Unwrap() error { return e.err }

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
