package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"ulp/internal/escape"
	"ulp/livepatch/active"
	"ulp/livepatch/report"
	"ulp/livepatch/sign"
	"ulp/livepatch/trigger"
)

type triggerOptions struct {
	sel       selectFlags
	revert    bool
	revertAll string
	json      bool
	retries   int
	timeout   time.Duration
	trusted   string
	recursive bool
	jobs      int
	activate  bool
	activeDir string
	// rootPrefix: -R/--root.
	rootPrefix string
	// checkStack: --check-stack.
	checkStack bool
	// allowSeccomp: --allow-seccomp.
	allowSeccomp bool
	// trustedSet: --trusted was given, so its folder must exist.
	trustedSet bool
}

func newTriggerCommand(g *globalOptions) *cobra.Command {
	var opts triggerOptions
	cmd := &cobra.Command{
		Use:   "trigger [-p PID|GLOB] [--revert] [--revert-all=LIB] [LIVEPATCH.so|'DIR/GLOB.so']",
		Short: "Apply or revert livepatches in running processes",
		Long: `trigger applies the livepatch container LIVEPATCH.so to process PID, which must
have been started with libpulp.so.0 preloaded. With --revert it undoes that
patch. With --revert-all=LIB it undoes every patch on the library LIB (a
basename such as libcrypto.so.3); given a LIVEPATCH.so too, it reverts them and
applies the new patch in one stop of the process (atomic replace), and if the
new patch is invalid nothing is reverted.

The container is loaded by one thread of the process while the others keep
running. The code is then written without stopping any thread when one
store can make each change (a padded library posted by "ulp post"), else
with every thread stopped for the write. With
--check-stack the write waits, retrying until --timeout, while any thread
executes a function being replaced or has a return address into one on its
stack; the ERROR then names the thread and the function.

Functions of libraries built without the NOP pad (Debian's glibc and OpenSSL)
are redirected by a 5-byte jump written over their entry; see "ulp
livepatchable -v".

Whole host: without -p every process that preloads the runtime is a
candidate; -p also takes a glob matched against process names. A process
the caller may not inspect (another user's) is then left out, not an error
(--json counts it in the summary's "inaccessible"); -u USER keeps only that
user's processes. The
container argument may be a quoted glob ('/usr/lib/pkg/*.so', expanded by
ulp over regular files ending in .so; --recursive descends into subfolders):
every container is tried on every candidate, and what does not apply (other
library, other build-id, already applied) is SKIPPED. Up to --jobs processes
are handled at once (starting while the rest are being found), by workers
that each reuse one tracer thread.

Patch-on-start: the runtime applies, before main, the containers of the
folder $LIBPULP_ACTIVE_DIR (default /var/lib/ulp/active) to every process
that starts. --activate updates that folder first, so that processes started
later get the same change: it installs the containers applied (each verified
under the trust policy first), and removes those that --revert or
--revert-all=LIB take back.

For each process and container it prints one line: SUCCESS, SKIPPED <reason>
(target library not loaded, build-id mismatch, already applied, not applied,
blocked by user, process exited) or ERROR <reason>. With several processes
or containers the lines start with "PID N (NAME): " (and the container's
name), and the summary "Processes patched: N, Skipped: M, Failed: K." ends
the output ("Processes reverted: ..." when nothing is applied). With --json it prints one ulp.trigger/v1 record per process and
container and a summary record instead (see docs/json.md).

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
			return runTrigger(cmd.Context(), g, opts, args, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	opts.sel.add(f, "the processes: a `PID`, or a glob matched against process names (default: every process with the runtime)")
	f.BoolVar(&opts.revert, "revert", false, "revert LIVEPATCH.so instead of applying it")
	f.StringVar(&opts.revertAll, "revert-all", "", "revert every patch on library `LIB` (then apply LIVEPATCH.so, if given); target: the library of each container")
	f.BoolVar(&opts.json, "json", false, "print NDJSON records instead of text")
	f.IntVarP(&opts.retries, "retries", "r", 20, "attempts when every thread is busy in malloc or the loader, or another agent holds the process")
	f.DurationVar(&opts.timeout, "timeout", 30*time.Second, "time allowed for each process")
	f.BoolVar(&opts.checkStack, "check-stack", false, "wait while a thread runs or returns into a function being replaced")
	f.BoolVar(&opts.allowSeccomp, "allow-seccomp", false, "load into processes with a seccomp filter too (libpulp's --disable-seccomp): only when the filter allows dlopen's system calls, or the process dies of SIGSYS")
	f.StringVar(&opts.trusted, "trusted", sign.DefaultTrustDir, "trust policy: load only containers signed by a key of `DIR`/*.pub (when DIR exists)")
	f.BoolVar(&opts.recursive, "recursive", false, "with a container glob, descend into the subfolders of its folder")
	f.IntVarP(&opts.jobs, "jobs", "j", 0, "`N` processes handled at once, by workers that each reuse one tracer thread (0: twice the number of CPUs)")
	f.StringVarP(&opts.rootPrefix, "root", "R", "", "`PREFIX` under which the processes see this agent's root (a process that cannot open the agent's descriptor opens PREFIX/CONTAINER-PATH)")
	f.BoolVar(&opts.activate, "activate", false, "also update the patch-on-start folder, so processes started later get the same change")
	f.StringVar(&opts.activeDir, "active-dir", "", "the patch-on-start folder `DIR` of --activate (default $"+active.EnvDir+", which the runtime reads, else "+active.DefaultDir+")")
	return cmd
}

// usageMaxArgs is cobra.MaximumNArgs with exit status 2.
func usageMaxArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > n {
			return usageError(fmt.Errorf("%s takes at most %d argument(s), got %d", cmd.Name(), n, len(args)))
		}
		return nil
	}
}

// expandContainers turns the container argument into container paths: a
// path without glob characters is itself; a glob selects, in path order,
// the regular files ending in .so of its folder (and, with recursive, of
// every subfolder) whose name matches its last element.
func expandContainers(arg string, recursive bool) ([]string, error) {
	if !strings.ContainsAny(filepath.Base(arg), "*?[") {
		if strings.ContainsAny(arg, "*?[") {
			return nil, fmt.Errorf("%s: only the file name may hold a glob", arg)
		}
		return []string{arg}, nil
	}
	dir, pat := filepath.Split(arg)
	dir = filepath.Clean(dir) // "" is "."
	if _, err := filepath.Match(pat, ""); err != nil {
		return nil, fmt.Errorf("%s: %w", arg, err)
	}
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != dir && !recursive {
				return filepath.SkipDir
			}
			return nil
		}
		if ok, _ := filepath.Match(pat, d.Name()); ok && d.Type().IsRegular() && strings.HasSuffix(d.Name(), ".so") {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("expand %s: %w", arg, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no container matches %s", arg)
	}
	slices.Sort(out)
	return out, nil
}

// revertAllTarget is --revert-all's word, as libpulp's, for "the library
// each container patches".
const revertAllTarget = "target"

// triggerPlan checks the flags and the containers before any process is
// touched (bad usage and an invalid container are exit status 2) and
// returns the requests every process receives, in order. With
// --revert-all=LIB and containers, the first container for LIB replaces
// the patches on LIB in one stop; without one, the revert-all comes first.
// --revert-all=target replaces, for each library the containers patch, its
// patches by the first container for it.
func triggerPlan(g *globalOptions, opts triggerOptions, args []string) (*trigger.Session, []trigger.Request, error) {
	paths, err := triggerPaths(opts, args)
	if err != nil {
		return nil, nil, err
	}
	trust, err := trustPolicy(g, opts.trusted, opts.trustedSet)
	if err != nil {
		return nil, nil, err
	}
	s := trigger.NewSession(trigger.Options{Retries: opts.retries, Timeout: opts.timeout, Log: g.log, Trust: trust,
		CheckStack: opts.checkStack, AllowSeccomp: opts.allowSeccomp, RootPrefix: opts.rootPrefix})
	reqs, err := triggerRequests(s, opts, args, paths)
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	return s, reqs, nil
}

// triggerPaths checks the flags and expands the container argument.
func triggerPaths(opts triggerOptions, args []string) ([]string, error) {
	switch {
	case opts.retries < 0:
		return nil, usageError(errors.New("--retries must not be negative"))
	case opts.timeout <= 0:
		return nil, usageError(errors.New("--timeout must be positive"))
	case opts.rootPrefix != "" && !filepath.IsAbs(opts.rootPrefix):
		return nil, usageError(fmt.Errorf("--root %s: not an absolute path", opts.rootPrefix))
	case opts.jobs < 0:
		return nil, usageError(errors.New("--jobs must not be negative"))
	case opts.revert && opts.revertAll != "":
		return nil, usageError(errors.New("--revert and --revert-all are mutually exclusive"))
	case opts.revert && len(args) == 0:
		return nil, usageError(errors.New("--revert needs LIVEPATCH.so"))
	case opts.revertAll == "" && len(args) == 0:
		return nil, usageError(errors.New("trigger needs LIVEPATCH.so (or --revert-all=LIB)"))
	case opts.revertAll == revertAllTarget && len(args) == 0:
		return nil, usageError(errors.New("--revert-all=target needs LIVEPATCH.so: it names the library of each container"))
	}
	var paths []string
	if len(args) == 1 {
		var err error
		if paths, err = expandContainers(args[0], opts.recursive); err != nil {
			return nil, usageError(err)
		}
	}
	return paths, nil
}

// triggerRequests reads the containers at paths, in s, and returns the
// requests every process receives, in order.
func triggerRequests(s *trigger.Session, opts triggerOptions, args, paths []string) ([]trigger.Request, error) {
	var reqs []trigger.Request
	replaced := map[string]bool{} // the libraries whose patches a container replaces
	for _, p := range paths {
		c, err := s.Container(p)
		if err != nil {
			return nil, usageError(fmt.Errorf("invalid container: %s: %w", p, err))
		}
		lib := c.Apply.Target.Name
		switch {
		case opts.revert:
			reqs = append(reqs, trigger.Request{Action: report.Revert, Container: p})
		case !replaced[lib] && (opts.revertAll == lib || opts.revertAll == revertAllTarget):
			replaced[lib] = true
			reqs = append(reqs, trigger.Request{Action: report.Replace, Container: p, Lib: lib})
		default:
			reqs = append(reqs, trigger.Request{Action: report.Apply, Container: p})
		}
	}
	if opts.revertAll != "" && opts.revertAll != revertAllTarget && !replaced[opts.revertAll] {
		if len(paths) == 1 && paths[0] == args[0] { // one container named, not a glob
			c, _ := s.Container(paths[0]) // read above
			return nil, usageError(fmt.Errorf("%s patches %q, not %s", paths[0], c.Apply.Target.Name, opts.revertAll))
		}
		reqs = append([]trigger.Request{{Action: report.RevertAll, Lib: opts.revertAll}}, reqs...)
	}
	return reqs, nil
}

func runTrigger(ctx context.Context, g *globalOptions, opts triggerOptions, args []string, w io.Writer) error {
	s, reqs, err := triggerPlan(g, opts, args)
	if err != nil {
		return err
	}
	defer s.Close()
	switch {
	case opts.sel.isPID():
		opts.jobs = 1 // one process: no idle workers to start and end
	case opts.jobs == 0:
		opts.jobs = 2 * runtime.NumCPU()
	}
	if opts.activeDir == "" {
		opts.activeDir = active.Dir()
	}
	found, filter, err := opts.sel.scan()
	if err != nil {
		return err
	}
	if opts.activate {
		say := func(what, path string) {
			if !opts.json && !g.quiet {
				fmt.Fprintf(w, "%s %s\n", what, escape.Text(path))
			}
		}
		if err := s.Activate(opts.activeDir, reqs, say); err != nil {
			return err
		}
	}
	reps := s.Run(ctx, found, reqs, opts.jobs)
	sum := report.Summarize(slices.Concat(reps...))
	sum.Inaccessible = filter.Inaccessible
	enc := json.NewEncoder(w)
	many := len(reps) != 1 || len(reqs) != 1
	for _, pr := range reps {
		for _, rep := range pr {
			if opts.json {
				if err := enc.Encode(rep); err != nil {
					return err
				}
				continue
			}
			printResult(w, g, rep, many, len(reqs) > 1)
		}
	}
	if opts.json {
		if err := enc.Encode(sum); err != nil {
			return err
		}
	} else if many && !g.quiet {
		done := "patched"
		if !slices.ContainsFunc(reqs, func(r trigger.Request) bool { return r.Action == report.Apply || r.Action == report.Replace }) {
			done = "reverted" // --revert, or --revert-all=LIB alone
		}
		fmt.Fprintf(w, "Processes %s: %d, Skipped: %d, Failed: %d.\n", done, sum.Patched, sum.Skipped, sum.Failed)
	}
	switch {
	case len(reps) == 0:
		return opts.sel.noMatch()
	case sum.Inconsistent > 0:
		return &ExitError{Code: report.ExitInconsistent, Err: fmt.Errorf(
			"%d process(es) may run a mix of old and new code: see their ERROR lines, check with `ulp patches`, and restart them if in doubt",
			sum.Inconsistent)}
	case sum.Failed > 0:
		return &ExitError{Code: report.ExitFailure}
	}
	return nil
}

// printResult prints the human line of one record: SUCCESS, SKIPPED
// <reason> or ERROR <reason>, prefixed with the process when several were
// selected and with the container's name when there are several. -q keeps
// only ERROR lines; -v adds the timings.
func printResult(w io.Writer, g *globalOptions, rep report.Process, many, containers bool) {
	if g.quiet && rep.Result != report.Error {
		return
	}
	line := string(rep.Result)
	if rep.Reason != "" {
		line += " " + escape.Text(rep.Reason)
	}
	if containers {
		what := escape.Text(filepath.Base(rep.Patch))
		if rep.Patch == "" {
			what = string(rep.Action)
		}
		line = what + ": " + line
	}
	if many {
		line = fmt.Sprintf("PID %d (%s): %s", rep.PID, escape.Text(rep.Comm), line)
	}
	fmt.Fprintln(w, line)
	if g.verbose {
		t := rep.Timings
		fmt.Fprintf(w, "  timings: total %d µs, attach %d µs, load %d µs, write %d µs, detach %d µs, pause %d µs\n",
			t.TotalUS, t.AttachUS, t.LoadUS, t.WriteUS, t.DetachUS, t.PauseUS)
	}
}
