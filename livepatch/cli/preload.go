package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/spf13/cobra"

	"ulp/internal/escape"
	"ulp/livepatch/preload"
	"ulp/livepatch/report"
)

func newPreloadCommand(g *globalOptions) *cobra.Command {
	var root string
	cmd := &cobra.Command{
		Use:   "preload enable [RUNTIME] | disable | status",
		Short: "Preload the runtime into every program started from now on (/etc/ld.so.preload)",
		Long: "preload manages the runtime's entry in /etc/ld.so.preload, which makes the\n" +
			"dynamic loader map libpulp.so.0 into every dynamically linked program started\n" +
			"afterwards, setuid programs included. Processes already running are not\n" +
			"covered: restart them to make them patchable.\n\n" +
			"enable checks first that the runtime loads (it runs cat with the runtime\n" +
			"preloaded and looks for it in its memory map) and refuses one that does not.\n" +
			"RUNTIME defaults to the libpulp.so.0 installed with this ulp. Every other\n" +
			"entry of the file is kept as it is; the file is replaced atomically.\n" + `
EXIT STATUS
  0  done (status: the runtime is preloaded)
  1  the file could not be changed or read (status: the runtime is not preloaded)
  2  bad usage, or a runtime that does not load (nothing was changed)
`,
		Args: usageExactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return usageError(errors.New("preload needs enable, disable or status"))
		},
	}
	cmd.PersistentFlags().StringVar(&root, "root", "/", "manage `DIR`/etc/ld.so.preload (an image or a scratch folder)")
	m := func() preload.Manager { return preload.Manager{Root: root} }
	enable := &cobra.Command{
		Use:   "enable [RUNTIME]",
		Short: "Preload the runtime into every program started from now on",
		Args:  usageMaxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rt := ""
			if len(args) == 1 {
				rt = args[0]
			}
			return runPreloadEnable(cmd, g, m(), rt)
		},
	}
	disable := &cobra.Command{
		Use:   "disable",
		Short: "Stop preloading the runtime into programs started from now on",
		Args:  usageExactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPreloadDisable(cmd.OutOrStdout(), g, m())
		},
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Tell whether the runtime is preloaded system-wide",
		Args:  usageExactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := m().Status()
			if err != nil {
				return err
			}
			printPreloadStatus(cmd.OutOrStdout(), st)
			if !st.Enabled() {
				return &ExitError{Code: report.ExitFailure}
			}
			return nil
		},
	}
	cmd.AddCommand(enable, disable, status)
	return cmd
}

func runPreloadEnable(cmd *cobra.Command, g *globalOptions, m preload.Manager, rt string) error {
	if rt == "" {
		var err error
		if rt, err = installedRuntime(m.Root); err != nil {
			return usageError(err)
		}
	}
	changed, err := m.Enable(cmd.Context(), rt)
	switch {
	case errors.Is(err, preload.ErrNotLoadable), errors.Is(err, preload.ErrBadRuntime):
		return usageError(fmt.Errorf("%w; nothing was changed", err))
	case err != nil:
		return preloadError(err)
	}
	if g.quiet {
		return nil
	}
	st, err := m.Status()
	if err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	if changed {
		fmt.Fprintf(w, "enabled: %s preloads %s\n", st.File, rt)
	} else {
		fmt.Fprintf(w, "already enabled: %s preloads %s\n", st.File, rt)
	}
	fmt.Fprintln(w, "only processes started from now on are covered: restart running services to make them patchable")
	return nil
}

func runPreloadDisable(w io.Writer, g *globalOptions, m preload.Manager) error {
	changed, err := m.Disable()
	if err != nil {
		return preloadError(err)
	}
	if g.quiet {
		return nil
	}
	file := m.Path(preload.File)
	if changed {
		fmt.Fprintf(w, "disabled: removed %s from %s\n", preload.RuntimeName, file)
	} else {
		fmt.Fprintf(w, "already disabled: %s has no %s entry\n", file, preload.RuntimeName)
	}
	fmt.Fprintln(w, "processes already running keep the runtime until they restart; programs started from now on do not get it")
	return nil
}

// preloadError adds advice to a failed change of the preload list.
func preloadError(err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("%w (changing /etc/ld.so.preload needs root: run sudo ulp preload ...)", err)
	}
	return err
}

func printPreloadStatus(w io.Writer, st preload.Status) {
	switch {
	case !st.Enabled():
		fmt.Fprintf(w, "disabled: %s has no %s entry\n", escape.Text(st.File), preload.RuntimeName)
	case st.Missing:
		fmt.Fprintf(w, "enabled, but the runtime is missing: %s preloads %s, which does not exist (every program prints a loader error: run ulp preload disable)\n", escape.Text(st.File), escape.Text(st.Runtime))
	default:
		fmt.Fprintf(w, "enabled: %s preloads %s\n", escape.Text(st.File), escape.Text(st.Runtime))
	}
	if len(st.Others) > 0 {
		fmt.Fprintf(w, "other entries: %s\n", strings.Join(escape.Texts(st.Others), " "))
	}
}

// installedRuntime finds the libpulp.so.0 installed with this ulp, as a
// path inside root: PREFIX/lib/MULTIARCH, PREFIX/lib, then the folder of
// the executable (a build tree).
func installedRuntime(root string) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return "", err
	}
	bin := filepath.Dir(exe)
	prefix := filepath.Dir(bin)
	var tried []string
	for _, p := range []string{
		filepath.Join(prefix, "lib", multiarch(), preload.RuntimeName),
		filepath.Join(prefix, "lib", preload.RuntimeName),
		filepath.Join(bin, preload.RuntimeName),
	} {
		tried = append(tried, p)
		if _, err := os.Stat(preload.Manager{Root: root}.Path(p)); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no %s installed with %s (looked at %s): give its path", preload.RuntimeName, exe, strings.Join(tried, ", "))
}

// multiarch is Debian's library folder name for this architecture.
func multiarch() string {
	switch runtime.GOARCH {
	case "arm64":
		return "aarch64-linux-gnu"
	case "386":
		return "i386-linux-gnu"
	}
	return "x86_64-linux-gnu"
}
