package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"ulp/livepatch/container"
	"ulp/livepatch/report"
	"ulp/livepatch/sign"
	"ulp/livepatch/target"
	"ulp/livepatch/trigger"
)

type triggerOptions struct {
	process   string
	revert    bool
	revertAll string
	json      bool
	retries   int
	timeout   time.Duration
	trusted   string
	// checkStack: --check-stack.
	checkStack bool
	// trustedSet: --trusted was given, so its folder must exist.
	trustedSet bool
}

func newTriggerCommand(g *globalOptions) *cobra.Command {
	var opts triggerOptions
	cmd := &cobra.Command{
		Use:   "trigger -p PID [--revert] [--revert-all=LIB] [LIVEPATCH.so]",
		Short: "Apply or revert a livepatch in a running process",
		Long: `trigger applies the livepatch container LIVEPATCH.so to process PID, which must
have been started with libpulp.so.0 preloaded. With --revert it undoes that
patch. With --revert-all=LIB it undoes every patch on the library LIB (a
basename such as libcrypto.so.3); given a LIVEPATCH.so too, it reverts them and
applies the new patch in one stop of the process (atomic replace), and if the
new patch is invalid nothing is reverted.

The container is loaded by one thread of the process while the others keep
running; the threads are stopped only while the code is written. With
--check-stack the write waits, retrying until --timeout, while any thread
executes a function being replaced or has a return address into one on its
stack; the ERROR then names the thread and the function.

Functions of libraries built without the NOP pad (Debian's glibc and OpenSSL)
are redirected by a 5-byte jump written over their entry; see "ulp
livepatchable -v".

For each process it prints one line: SUCCESS, SKIPPED <reason> (target library
not loaded, build-id mismatch, already applied, not applied, blocked by user,
process exited) or ERROR <reason>. With --json it prints one ulp.trigger/v1
record per process and a summary record instead (see docs/json.md).

-p also takes a glob matched against the process name of every process that
preloads the runtime; lines then start with "PID N (NAME): ".

Trust policy: when the folder /etc/ulp/trusted.d exists (or the folder named
by --trusted), apply and replace load only a container signed ("ulp sign") by
a key of one of its *.pub files, owned by root or the caller and not writable
by group or others; any other is an ERROR "refused by trust policy ..." and
nothing is mapped into the process. The agent opens the container once and
the process loads that open file, so replacing the file meanwhile is harmless.
` + exitStatusHelp,
		Args: usageMaxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.trustedSet = cmd.Flags().Changed("trusted")
			return runTrigger(cmd.Context(), g, opts, args, cmd.Flags().Changed("process"), cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVarP(&opts.process, "process", "p", "", "the process: a `PID`, or a glob matched against process names")
	f.BoolVar(&opts.revert, "revert", false, "revert LIVEPATCH.so instead of applying it")
	f.StringVar(&opts.revertAll, "revert-all", "", "revert every patch on library `LIB` (then apply LIVEPATCH.so, if given)")
	f.BoolVar(&opts.json, "json", false, "print NDJSON records instead of text")
	f.IntVarP(&opts.retries, "retries", "r", 20, "attempts when every thread is busy in malloc or the loader, or another agent holds the process")
	f.DurationVar(&opts.timeout, "timeout", 30*time.Second, "time allowed for each process")
	f.BoolVar(&opts.checkStack, "check-stack", false, "wait while a thread runs or returns into a function being replaced")
	f.StringVar(&opts.trusted, "trusted", sign.DefaultTrustDir, "trust policy: load only containers signed by a key of `DIR`/*.pub (when DIR exists)")
	return cmd
}

// triggerJobs bounds the processes triggered at once.
const triggerJobs = 4

// usageMaxArgs is cobra.MaximumNArgs with exit status 2.
func usageMaxArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > n {
			return usageError(fmt.Errorf("%s takes at most %d argument(s), got %d", cmd.Name(), n, len(args)))
		}
		return nil
	}
}

// triggerRequest checks the flags and the container before any process is
// touched: bad usage and an invalid container are exit status 2.
func triggerRequest(opts triggerOptions, args []string) (trigger.Request, error) {
	var req trigger.Request
	if len(args) == 1 {
		req.Container = args[0]
	}
	switch {
	case opts.retries < 0:
		return req, usageError(errors.New("--retries must not be negative"))
	case opts.timeout <= 0:
		return req, usageError(errors.New("--timeout must be positive"))
	case opts.revert && opts.revertAll != "":
		return req, usageError(errors.New("--revert and --revert-all are mutually exclusive"))
	case opts.revert && req.Container == "":
		return req, usageError(errors.New("--revert needs LIVEPATCH.so"))
	case opts.revert:
		req.Action = trigger.ActRevert
	case opts.revertAll != "" && req.Container == "":
		req.Action, req.Lib = trigger.ActRevertAll, opts.revertAll
	case opts.revertAll != "":
		req.Action, req.Lib = trigger.ActReplace, opts.revertAll
	case req.Container == "":
		return req, usageError(errors.New("trigger needs LIVEPATCH.so (or --revert-all=LIB)"))
	default:
		req.Action = trigger.ActApply
	}
	if req.Container != "" {
		c, err := container.Open(req.Container)
		if err != nil {
			return req, usageError(fmt.Errorf("invalid container: %w", err))
		}
		if req.Action == trigger.ActReplace && c.Apply.Target.Name != req.Lib {
			return req, usageError(fmt.Errorf("%s patches %s, not %s", req.Container, c.Apply.Target.Name, req.Lib))
		}
	}
	return req, nil
}

func runTrigger(ctx context.Context, g *globalOptions, opts triggerOptions, args []string, hasProcess bool, w io.Writer) error {
	if !hasProcess || opts.process == "" {
		return usageError(errors.New("trigger needs -p PID"))
	}
	req, err := triggerRequest(opts, args)
	if err != nil {
		return err
	}
	found, err := target.Select(opts.process)
	if err != nil {
		return usageError(err)
	}
	trust, err := trustPolicy(g, opts.trusted, opts.trustedSet)
	if err != nil {
		return err
	}
	o := trigger.Options{Retries: opts.retries, Timeout: opts.timeout, Log: g.log, Trust: trust, CheckStack: opts.checkStack}
	// Processes are independent: up to triggerJobs at once, each with its
	// own tracer thread; the lines come out in process order.
	reps := make([]report.Process, len(found))
	var wg sync.WaitGroup
	jobs := make(chan struct{}, triggerJobs)
	for i, f := range found {
		wg.Go(func() {
			jobs <- struct{}{}
			defer func() { <-jobs }()
			reps[i] = trigger.Run(ctx, f.PID, req, o)
			if reps[i].Comm == "" {
				reps[i].Comm = f.Comm // a process that could not be inspected
			}
		})
	}
	wg.Wait()
	sum := report.Summary{Schema: report.TriggerSchema, Type: report.TypeSummary}
	enc := json.NewEncoder(w)
	many := len(found) != 1
	for _, rep := range reps {
		sum.Candidates++
		switch rep.Result {
		case report.Success:
			sum.Patched++
			if req.Action == trigger.ActApply || req.Action == trigger.ActReplace {
				sum.PatchesApplied++
			}
		case report.Skipped:
			sum.Skipped++
		case report.Error:
			sum.Failed++
		}
		if rep.Inconsistent {
			sum.Inconsistent++
		}
		if opts.json {
			if err := enc.Encode(rep); err != nil {
				return err
			}
			continue
		}
		printResult(w, g, rep, many)
	}
	if opts.json {
		if err := enc.Encode(sum); err != nil {
			return err
		}
	} else if many && !g.quiet {
		fmt.Fprintf(w, "processes: %d, patched: %d, skipped: %d, failed: %d\n",
			sum.Candidates, sum.Patched, sum.Skipped, sum.Failed)
	}
	switch {
	case sum.Inconsistent > 0:
		return &ExitError{Code: ExitInconsistent, Err: fmt.Errorf(
			"%d process(es) may run a mix of old and new code: see their ERROR lines, check with `ulp patches`, and restart them if in doubt",
			sum.Inconsistent)}
	case sum.Failed > 0:
		return &ExitError{Code: ExitFailure}
	}
	return nil
}

// printResult prints the human line of one process: SUCCESS, SKIPPED
// <reason> or ERROR <reason>, prefixed with the process when several were
// selected. -q keeps only ERROR lines; -v adds the timings.
func printResult(w io.Writer, g *globalOptions, rep report.Process, many bool) {
	if g.quiet && rep.Result != report.Error {
		return
	}
	line := string(rep.Result)
	if rep.Reason != "" {
		line += " " + rep.Reason
	}
	if many {
		line = fmt.Sprintf("PID %d (%s): %s", rep.PID, rep.Comm, line)
	}
	fmt.Fprintln(w, line)
	if g.verbose {
		t := rep.Timings
		fmt.Fprintf(w, "  timings: total %d µs, attach %d µs, load %d µs, write %d µs, detach %d µs, pause %d µs\n",
			t.TotalUS, t.AttachUS, t.LoadUS, t.WriteUS, t.DetachUS, t.PauseUS)
	}
}
