package cli

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"ulp/internal/escape"
	"ulp/livepatch/abi"
	"ulp/livepatch/container"
	"ulp/livepatch/ledger"
	"ulp/livepatch/procfs"
	"ulp/livepatch/report"
	"ulp/livepatch/target"
)

type patchesOptions struct {
	sel     selectFlags
	json    bool
	buildID bool
	// onlyPatched: --only-livepatched.
	onlyPatched bool
}

func newPatchesCommand(g *globalOptions) *cobra.Command {
	var opts patchesOptions
	cmd := &cobra.Command{
		Use:   "patches [-p PID|NAME-GLOB] [--json]",
		Short: "List processes with the runtime, their livepatchable libraries and applied patches",
		Long: "patches lists the processes that preload libpulp.so.0, the libraries of each\n" +
			"that can be live patched, and the live patches applied to them with their\n" +
			"load time and bug labels. It reads each process's memory without stopping it.\n" +
			"A process named by its PID that cannot be read is listed with the reason;\n" +
			"without -p or with a glob, only the processes the caller may read are listed\n" +
			"(-u USER: only that user's). A library is livepatchable when a function of it\n" +
			"has the entry pad or an entry that can take the jump (ulp livepatchable).\n" + `
EXIT STATUS
  0  every selected process was listed
  1  at least one process could not be read (its block says why), or a -p glob
     matched no process
  2  bad usage (a -p PID that does not exist)
`,
		Args: usageExactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPatches(cmd.Context(), g, opts, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	opts.sel.add(f, "select the process `PID`, or the processes whose name matches a glob (default: every process with the runtime)")
	f.BoolVar(&opts.onlyPatched, "only-livepatched", false, "list only the processes with at least one patch applied")
	f.BoolVar(&opts.json, "json", false, "print one JSON record per process (schema "+report.PatchesSchema+")")
	f.BoolVarP(&opts.buildID, "build-id", "b", false, "print the build-id of each library")
	return cmd
}

// patchedLib is one livepatchable library of a process, with its patches.
type patchedLib struct {
	obj     *target.Object
	patches []ledger.Patch
}

// processView is what `ulp patches` knows about one process.
type processView struct {
	pid    int
	comm   string
	err    error
	state  abi.State
	reason string
	libs   []patchedLib
}

func runPatches(ctx context.Context, g *globalOptions, opts patchesOptions, w io.Writer) error {
	found, filter, err := opts.sel.scan()
	if err != nil {
		return err
	}
	patchable := patchableCache{log: g.log, known: make(map[string]bool)}
	failed, selected, listed := 0, 0, 0
	enc := json.NewEncoder(w)
	for f := range found {
		selected++
		v := inspect(ctx, f, &patchable)
		if v.err != nil {
			failed++
		}
		if opts.onlyPatched && v.err == nil && !v.patched() {
			continue
		}
		listed++
		if opts.json {
			if err := enc.Encode(v.record()); err != nil {
				return err
			}
			continue
		}
		if listed > 1 {
			fmt.Fprintln(w)
		}
		v.print(w, opts.buildID)
	}
	if filter.Inaccessible > 0 {
		g.log.Info("processes not inspected: the caller may not read them", "count", filter.Inaccessible)
	}
	if opts.json {
		sum := report.ListSummary{Schema: report.PatchesSchema, Type: report.TypeSummary,
			Processes: listed, Failed: failed, Inaccessible: filter.Inaccessible}
		if err := enc.Encode(sum); err != nil {
			return err
		}
	}
	if selected == 0 {
		if err := opts.sel.noMatch(); err != nil {
			return err
		}
		g.log.Info("no process with the runtime found", "runtime", target.RuntimeName)
	}
	if failed > 0 {
		return &ExitError{Code: report.ExitFailure}
	}
	return nil
}

// inspect reads one process without stopping it.
func inspect(ctx context.Context, f target.Found, patchable *patchableCache) processView {
	v := processView{pid: f.PID, comm: f.Comm, err: f.Err}
	if v.err != nil {
		return v
	}
	p, err := target.Open(f.PID)
	if err != nil {
		v.err = err
		return v
	}
	v.comm = p.Comm
	blk, err := p.ReadABI()
	if err != nil {
		v.err = err
		return v
	}
	v.state, v.reason = blk.State, abi.String(blk.Reason[:])
	l, err := p.ReadLedger(ctx)
	if err != nil {
		v.err = err
		return v
	}
	// Each patch under the object its target names (by basename, else by
	// DT_SONAME: see target.Process.Object).
	byObj := make(map[*target.Object][]ledger.Patch)
	var orphans []ledger.Patch
	for _, pt := range l.Patches {
		if o := p.Object(pt.Target); o != nil {
			byObj[o] = append(byObj[o], pt)
		} else {
			orphans = append(orphans, pt)
		}
	}
	for i := range p.Objects {
		o := &p.Objects[i]
		lib := patchedLib{obj: o, patches: byObj[o]}
		if len(lib.patches) > 0 || o != p.Runtime && patchable.has(p, o) {
			v.libs = append(v.libs, lib)
		}
	}
	// Patches whose target is no longer among the objects (never expected).
	for _, pt := range orphans {
		v.libs = append(v.libs, patchedLib{obj: &target.Object{Path: pt.Target + " (not loaded)", Name: pt.Target}, patches: []ledger.Patch{pt}})
	}
	return v
}

// patched reports whether the process has at least one patch applied.
func (v *processView) patched() bool {
	for _, lib := range v.libs {
		if len(lib.patches) > 0 {
			return true
		}
	}
	return false
}

// patchableCache remembers which objects have a function that can take a
// patch (the pad, or an entry that can take the jump), by build-id (or path
// when an object has none), across the processes of one listing.
type patchableCache struct {
	log   *slog.Logger
	known map[string]bool
}

func (c *patchableCache) has(p *target.Process, o *target.Object) bool {
	key := "path:" + o.Path
	if len(o.BuildID) > 0 {
		key = "id:" + hex.EncodeToString(o.BuildID)
	}
	if v, ok := c.known[key]; ok {
		return v
	}
	obj, err := p.Symbols(o)
	if err != nil {
		c.log.Debug("cannot read symbols; not listing the object", "pid", p.PID, "object", o.Path, "err", err)
		c.known[key] = false
		return false
	}
	defer obj.Close()
	ok, err := obj.HasPatchable()
	if err != nil {
		c.log.Debug("cannot read symbols; not listing the object", "pid", p.PID, "object", o.Path, "err", err)
	}
	if obj.Section(container.SectionApply) != nil {
		ok = false // a loaded livepatch container is not a library to patch
	}
	c.known[key] = ok
	return ok
}

// describe turns an error reading process pid into the reason printed
// for it. A permission error names what denies it: another owner (or a
// setuid, non-dumpable process), or Yama's ptrace_scope for the caller's
// own process (reading memory needs ptrace-attach rights).
func describe(pid int, err error) string {
	switch {
	case errors.Is(err, procfs.ErrNoProcess):
		return "no such process"
	case errors.Is(err, fs.ErrPermission):
		return fmt.Sprintf("cannot read process: %v (%s)", err, procfs.PtraceAdvice(pid, false))
	case errors.Is(err, target.ErrNoRuntime):
		return fmt.Sprintf("%v (start it with LD_PRELOAD=%s)", err, target.RuntimeName)
	}
	return err.Error()
}

// status describes a runtime state other than ready, with its reason.
func (v *processView) status() string {
	status := v.state.String()
	if v.reason != "" {
		status += " (" + v.reason + ")"
	}
	return status
}

func (v *processView) print(w io.Writer, buildID bool) {
	fmt.Fprintf(w, "PID: %d, name: %s\n", v.pid, escape.Text(v.comm))
	if v.err != nil {
		fmt.Fprintf(w, "  error: %s\n", escape.Text(describe(v.pid, v.err)))
		return
	}
	if v.state != abi.StateReady {
		fmt.Fprintf(w, "  Livepatching status: %s\n", escape.Text(v.status()))
	}
	fmt.Fprintln(w, "  Livepatchable libraries:")
	if len(v.libs) == 0 {
		fmt.Fprintln(w, "    (none)")
	}
	for _, lib := range v.libs {
		if buildID && len(lib.obj.BuildID) > 0 {
			fmt.Fprintf(w, "    in %s (build-id %x):\n", escape.Text(lib.obj.Path), lib.obj.BuildID)
		} else {
			fmt.Fprintf(w, "    in %s:\n", escape.Text(lib.obj.Path))
		}
		for _, pt := range lib.patches {
			fmt.Fprintf(w, "      livepatch: %s", escape.Text(filepath.Base(pt.Container)))
			if !pt.AppliedAt.IsZero() {
				fmt.Fprintf(w, " loaded on %s", pt.AppliedAt.Local().Format("2006-01-02 15:04:05 MST"))
			}
			fmt.Fprintln(w)
			if len(pt.Labels) > 0 {
				fmt.Fprintf(w, "        bug labels: %s\n", strings.Join(escape.Texts(pt.Labels), ", "))
			}
		}
	}
}

func (v *processView) record() report.PatchedProcess {
	r := report.PatchedProcess{Schema: report.PatchesSchema, PID: v.pid, Comm: v.comm,
		Libraries: []string{}, Patches: []report.AppliedPatch{}, Status: report.StatusEnabled}
	if v.err != nil {
		r.Error = describe(v.pid, v.err)
		r.Status, r.StatusReason = report.StatusUnknown, r.Error
		return r
	}
	if v.state != abi.StateReady {
		r.Status, r.StatusReason = report.StatusDisabled, v.status()
	}
	for _, lib := range v.libs {
		r.Libraries = append(r.Libraries, lib.obj.Path)
		for _, pt := range lib.patches {
			r.Patches = append(r.Patches, report.AppliedPatch{
				ID:        hex.EncodeToString(pt.ID[:]),
				Container: pt.Container,
				Target:    pt.Target,
				AppliedAt: pt.AppliedAt,
				Labels:    pt.Labels,
				Functions: len(pt.Redirects),
			})
		}
	}
	return r
}
