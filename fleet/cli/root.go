package cli

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"ulp/fleet"
	"ulp/internal/escape"
	"ulp/internal/exitstatus"
)

// Exit statuses of ulpfleet, listed under EXIT STATUS in `ulpfleet --help`
// and in docs/fleet.md. ExitCode is the only place that maps errors to them.
const (
	ExitOK        = 0   // every host succeeded
	ExitFailure   = 1   // at least one host failed (or a process reported ERROR)
	ExitUsage     = 2   // bad usage, invalid inventory or settings; nothing was done
	ExitStopped   = 3   // the canary gate or --max-failures stopped the rollout: some hosts not attempted
	ExitCancelled = 130 // interrupted (Ctrl-C, SIGTERM, SIGHUP)
)

const exitStatusHelp = `
EXIT STATUS
  0    every host succeeded
  1    at least one host failed or reported a process ERROR
  2    bad usage, invalid inventory or settings; nothing was done
  3    stopped by the canary gate, --max-failures or --max-fail: some hosts were not attempted
  130  interrupted (Ctrl-C, SIGTERM or SIGHUP): hosts in flight were cancelled
`

// ExitError carries a specific exit status up to Run. Err may be nil when
// the command already printed everything it had to say.
type ExitError = exitstatus.Error

// usageError marks err as bad usage or invalid input (exit status 2).
func usageError(err error) error { return &ExitError{Code: ExitUsage, Err: err} }

// app holds what the commands share: the settings (after PersistentPreRunE),
// the output streams and the hooks tests replace.
type app struct {
	cfg    Config
	log    *slog.Logger
	stdout io.Writer
	stderr io.Writer
	// tty reports whether stdout is a terminal (progress display).
	tty bool
	// dialer builds the connection factory from the settings.
	dialer func(cfg Config, log *slog.Logger) (fleet.Dialer, error)
	// agent returns the agent binary to upload.
	agent func(cfg Config) (fleet.Artifact, error)
	// defaultResults is set when the results file is the default, not one
	// named by a flag, the environment or the config file.
	defaultResults bool
	// started is set once cobra accepted the command line: errors before
	// that (unknown command or flag, wrong arguments) are usage errors.
	started bool
}

func newApp(stdout, stderr io.Writer) *app {
	return &app{stdout: stdout, stderr: stderr, dialer: sshDialer, agent: agentArtifact}
}

// newRoot returns the ulpfleet command tree.
func newRoot(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "ulpfleet",
		Short: "Roll livepatches out to a fleet of hosts over SSH",
		Long: "ulpfleet uploads the ulp agent and livepatch containers to the hosts of an\n" +
			"Ansible-style inventory over SSH and applies, reverts or reports patches,\n" +
			"canary hosts first. Settings come from flags, ULPFLEET_* environment\n" +
			"variables (ULPFLEET_MAX_FAILURES for --max-failures) and a config file\n" +
			"(--config, else ./ulpfleet.yaml or ~/.config/ulpfleet/config.yaml), in that\n" +
			"order of precedence. See docs/fleet.md.\n" + exitStatusHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			a.started = true
			return a.loadSettings(cmd)
		},
	}
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError(err) })
	addSettingFlags(root.PersistentFlags())
	root.AddCommand(
		newApplyCommand(a),
		newRevertCommand(a),
		newPlanCommand(a),
		newStatusCommand(a),
		newPingCommand(a),
		newPushCommand(a),
		newRetryCommand(a),
		newMessagesCommand(a),
		newCleanCommand(a),
		newVersionCommand(a),
	)
	return root
}

// NewRoot returns the `ulpfleet` command tree, writing to os.Stdout and
// os.Stderr (for generating its documentation; Run runs it).
func NewRoot() *cobra.Command { return newRoot(newApp(os.Stdout, os.Stderr)) }

// ExitCode prints err (once) on w and returns the exit status for it: the
// Code of an *ExitError, else the class of err.
func ExitCode(w io.Writer, err error) int {
	return exitstatus.Print(escape.LineWriter{W: w}, "ulpfleet", err, func(err error) int {
		switch {
		case errors.Is(err, context.Canceled):
			return ExitCancelled
		case errors.Is(err, fleet.ErrStopped):
			return ExitStopped
		case errors.Is(err, fleet.ErrPlan):
			return ExitUsage
		}
		return ExitFailure
	})
}

// Run executes the ulpfleet command tree with args and returns the exit
// status. The first SIGINT, SIGTERM or SIGHUP (the terminal closed)
// cancels the rollout (hosts in flight are cancelled, no new host starts,
// the results are saved); a second one kills the process.
func Run(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	context.AfterFunc(ctx, stop) // the second signal gets the default action
	a := newApp(os.Stdout, os.Stderr)
	a.tty = isTerminal(os.Stdout)
	return a.run(ctx, args)
}

func (a *app) run(ctx context.Context, args []string) int {
	root := newRoot(a)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	var ee *ExitError
	if err != nil && !a.started && !errors.As(err, &ee) {
		err = usageError(err)
	}
	return ExitCode(a.stderr, err)
}
