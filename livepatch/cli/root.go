package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"

	"ulp/internal/escape"
	"ulp/internal/exitstatus"
	"ulp/livepatch/abi"
	"ulp/livepatch/report"
)

// Version is ulp's version, set at link time by the Makefile
// (-X ulp/livepatch/cli.Version=$(VERSION)); "unknown" in a plain go build.
var Version = "unknown"

// versionLine is what `ulp --version` and `ulp version` print.
func versionLine() string {
	goVersion := "unknown Go"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
	}
	return fmt.Sprintf("ulp %s (runtime ABI %d, %s)\n", Version, abi.Version, goVersion)
}

// ExitError carries a specific exit status up to main. Err may be nil when
// the command already printed everything it had to say.
type ExitError = exitstatus.Error

// usageError marks err as bad usage or invalid input (exit status 2).
func usageError(err error) error { return &ExitError{Code: report.ExitUsage, Err: err} }

// globalOptions are the flags shared by every command.
type globalOptions struct {
	quiet   bool
	verbose bool
	log     *slog.Logger
	// started is set once cobra accepted the command line: errors before
	// that (unknown command, wrong arguments) are usage errors.
	started bool
}

const exitStatusHelp = `
EXIT STATUS
  0  success (trigger: no process reported ERROR)
  1  at least one ERROR; a -p glob matched no process; check: patch not applied;
     livepatchable: not livepatchable
  2  bad usage or invalid input (a -p PID that does not exist); nothing was changed
  3  a process may have been left inconsistent (explained on stderr)
`

// newRoot returns the `ulp` command tree.
func newRoot(g *globalOptions) *cobra.Command {
	root := &cobra.Command{
		Use:   "ulp",
		Short: "User-space live patching: build, apply and inspect livepatches",
		Long: "ulp builds livepatch containers and applies them to running processes that\n" +
			"preload libpulp.so.0, without restarting them.\n" + exitStatusHelp,
		Version:       Version,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			g.started = true
			if g.quiet && g.verbose {
				return usageError(errors.New("-q and -v are mutually exclusive"))
			}
			level := slog.LevelWarn
			if g.verbose {
				level = slog.LevelDebug
			}
			g.log = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			return nil
		},
	}
	root.SetVersionTemplate(versionLine())
	root.Flags().BoolP("version", "V", false, "print ulp's version (as libpulp's -V)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError(err) })
	root.PersistentFlags().BoolVarP(&g.quiet, "quiet", "q", false, "print only errors")
	root.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "print debug information on stderr")
	root.AddCommand(
		newPackerCommand(g),
		newDumpCommand(g),
		newLivepatchableCommand(g),
		newExtractCommand(g),
		newPostCommand(g),
		newTriggerCommand(g),
		newPatchesCommand(g),
		newCheckCommand(g),
		newMessagesCommand(g),
		newSetPatchableCommand(g),
		newPreloadCommand(g),
		newKeygenCommand(g),
		newSignCommand(g),
		newVerifyCommand(g),
		&cobra.Command{
			Use:   "version",
			Short: "Print ulp's version (also: ulp --version)",
			Args:  usageExactArgs(0),
			RunE: func(cmd *cobra.Command, _ []string) error {
				_, err := io.WriteString(cmd.OutOrStdout(), versionLine())
				return err
			},
		},
	)
	root.AddCommand(packagingCommands(g)...)
	return root
}

// NewRoot returns the `ulp` command tree, writing to os.Stdout and
// os.Stderr (for generating its documentation; Run runs it).
func NewRoot() *cobra.Command { return newRoot(&globalOptions{}) }

// ExitCode prints err (once) on w and returns the exit status for it: the
// Code of an *ExitError, else report.ExitFailure.
func ExitCode(w io.Writer, err error) int {
	return exitstatus.Print(escape.LineWriter{W: w}, "ulp", err, func(error) int { return report.ExitFailure })
}

// Run executes the ulp command tree with args and returns the exit status.
func Run(args []string) int { return run(context.Background(), args, os.Stdout, os.Stderr) }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	g := &globalOptions{}
	root := newRoot(g)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	var ee *ExitError
	if err != nil && !g.started && !errors.As(err, &ee) {
		err = usageError(err)
	}
	return ExitCode(stderr, err)
}
