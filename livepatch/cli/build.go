//go:build !fleetagent

package cli

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/spf13/cobra"

	"ulp/builder"
	"ulp/builder/recipe"
	"ulp/internal/escape"
	"ulp/livepatch/elfsym"
)

type buildOptions struct {
	target, source, patch string
	recipe, compdb        string
	out, comment          string
	debugRoot, workDir    string
	sourceCache           string
}

func newBuildCommand(g *globalOptions) *cobra.Command {
	var opts buildOptions
	cmd := &cobra.Command{
		Use:   "build --target LIB [--source DIR] --patch FIX.patch [-o OUT.so]",
		Short: "Build a livepatch container from a source fix of a stock library",
		Long: `build compiles each C file that FIX.patch (a unified diff, -p1) changes in
the source tree DIR before and after the fix, with the flags the package's own
build uses (a recipe: openssl, glibc, or a compile_commands.json), compares the
objects function by function, finds every function it replaces and every
static symbol it uses in LIB (a stripped library is fine: the code compiled
again locates them), and writes an ordinary container: OUT replaces each
changed function of LIB. A fix that cannot be live patched safely (a new or
resized variable, a changed struct layout, code that does not match LIB) is
refused with the reason and exit status 2. Without --source (and
--compile-commands), LIB must be a file of an installed Debian package: its
source package at the installed version is fetched with apt-get source
(deb-src entries needed) into --source-cache. See docs/building-livepatches.md.`,
		Args: usageExactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBuild(cmd, g, opts, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.target, "target", "", "the stock library `LIB` the livepatch is for")
	f.StringVar(&opts.source, "source", "", "the source tree `DIR` LIB was built from (default: the folder of --compile-commands, else fetched with apt-get source)")
	f.StringVar(&opts.patch, "patch", "", "the fix, a unified diff `FILE` (-p1)")
	f.StringVar(&opts.recipe, "recipe", "auto", "how DIR compiles: `openssl`, glibc or auto")
	f.StringVar(&opts.compdb, "compile-commands", "", "take the compile flags from `FILE` (compile_commands.json) instead of a recipe")
	f.StringVarP(&opts.out, "output", "o", "", "write the container to `OUT` (default: FIX.so next to the patch)")
	f.StringVarP(&opts.comment, "message", "m", "", "a comment for the container; bug labels in it (CVE-...) are listed")
	f.StringVar(&opts.debugRoot, "debug-root", elfsym.DefaultDebugRoot, "search `DIR`/.build-id for LIB's debuginfo (\"\" to disable)")
	f.StringVar(&opts.workDir, "work-dir", "", "keep the intermediate files in `DIR`")
	cache, _ := recipe.DefaultSourceCache()
	f.StringVar(&opts.sourceCache, "source-cache", cache, "fetch the source into `DIR` when --source is not given")
	return cmd
}

func runBuild(cmd *cobra.Command, g *globalOptions, opts buildOptions, stdout io.Writer) error {
	if opts.target == "" || opts.patch == "" {
		return usageError(errors.New("--target and --patch are required"))
	}
	var r recipe.Recipe
	var err error
	switch {
	case opts.compdb != "" && opts.recipe != "auto":
		return usageError(errors.New("--recipe and --compile-commands are two ways of saying how the tree compiles: give one"))
	case opts.compdb != "" && opts.source != "":
		r, err = recipe.LoadCompileCommands(opts.compdb, opts.source)
	case opts.compdb != "":
		r, err = recipe.FromCompileCommands(opts.compdb)
	default:
		src := opts.source
		if src == "" {
			if src, err = recipe.Fetch(cmd.Context(), opts.target, opts.sourceCache); err != nil {
				if errors.Is(err, recipe.ErrNoSource) {
					return usageError(err)
				}
				return err
			}
			g.log.Debug("fetched source", "tree", src)
		}
		r, err = recipe.Open(opts.recipe, src, opts.target)
	}
	if err != nil {
		return usageError(fmt.Errorf("recipe: %w", err))
	}
	out := opts.out
	if out == "" {
		out = trimExt(opts.patch) + ".so"
	}
	res, err := builder.Build(cmd.Context(), builder.Options{
		Target: opts.target, Recipe: r, Patch: opts.patch, Out: out, Comment: opts.comment,
		DebugRoot: opts.debugRoot, WorkDir: opts.workDir, Log: g.log,
	})
	if err != nil {
		if errors.Is(err, builder.ErrRefused) || errors.Is(err, builder.ErrInput) {
			return usageError(err)
		}
		return err
	}
	if !g.quiet {
		fmt.Fprintf(stdout, "built %s: patch %s, %d functions, %d references, target %s (build-id %x)\n",
			escape.Text(res.Out), res.Spec.ID, len(res.Spec.Funcs), len(res.Spec.Refs), escape.Text(res.Spec.Target.Name), res.Spec.Target.BuildID)
		for _, f := range res.Funcs {
			fmt.Fprintf(stdout, "  %s (%s) at %#x\n", escape.Text(f.Name), escape.Text(f.TU), f.OldOffset)
		}
	}
	return nil
}

func trimExt(p string) string { return p[:len(p)-len(filepath.Ext(p))] }
