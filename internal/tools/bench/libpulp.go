package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"ulp/internal/testenv"
)

// sideTool is one of the two tools measured side by side: its agent, the
// runtime its targets preload and its container of the benchmark's patch.
type sideTool struct {
	name    string // "ulp" or "libpulp"
	bin     string
	runtime string
	lp      string
}

// sameRunSource names the anchor of every same-run ratio.
const sameRunSource = "libpulp 0.3.17, this run"

// libpulpDir returns the folder of the prebuilt libpulp (bin/ulp,
// lib/libpulp.so.0.0.0) and why it cannot be used ("" when it can).
func libpulpDir(flagDir string) (string, string) {
	dir := flagDir
	if dir == "" {
		dir = testenv.LibpulpDir()
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err.Error()
	}
	for _, f := range []string{"bin/ulp", "lib/libpulp.so.0.0.0"} {
		if _, err := os.Stat(filepath.Join(abs, f)); err != nil {
			return "", fmt.Sprintf("no prebuilt libpulp 0.3.17 (%v); name its folder with -libpulp or $ULP_LIBPULP_DIR", err)
		}
	}
	return abs, ""
}

// libpulpSection runs ulp and SUSE's libpulp 0.3.17 side by side in one run:
// the same padded library (posted once), the same target programs, each
// tool's own container of the same replacement and its own runtime
// preloaded, the tools alternated sample by sample (which one goes first
// alternates too), and a fresh target per sample. Figures, each tool's
// median with ulp's ratio to libpulp's:
//   - one process, `trigger -p PID` (apply, then revert): the wall time of
//     the agent's process and the longest stall of a thread spinning on the
//     clock, with 1 spinning thread and with 1000 more threads blocked in
//     pause() (-libpulp-idle);
//   - whole host: one `trigger` without -p over a parent and its N forked
//     children (-libpulp-procs), apply then revert, wall per process. Each
//     host sample runs in a PID namespace of its own, so that neither tool
//     sees (nor touches) any other process of the machine.
func libpulpSection(ctx context.Context, e *env) Section {
	s := Section{Title: "ulp and libpulp 0.3.17 side by side, same run, alternated, fresh target per sample"}
	dir, why := libpulpDir(e.cfg.Libpulp)
	if why != "" {
		s.Status, s.Reason = StatusSkipped, why
		return s
	}
	tools, err := sideTools(ctx, e, dir)
	if err != nil {
		return failed(s, nil, err)
	}
	smp := newSamples()
	for _, idle := range e.cfg.LibpulpIdle {
		for i := range e.cfg.Runs {
			for _, t := range alternate(tools, i) {
				if err := sideTriggerSample(ctx, e, t, idle, smp); err != nil {
					return failed(s, smp, fmt.Errorf("%s, %d idle threads: %w", t.name, idle, err))
				}
			}
		}
	}
	if len(e.cfg.LibpulpProcs) > 0 {
		if why := namespaceMissing(); why != "" {
			s.Notes = append(s.Notes, "whole host not measured: "+why)
		} else {
			timeit := e.path("timeit")
			if err := e.cc(ctx, timeit, []string{"-O2"}, "timeit.c"); err != nil {
				return failed(s, smp, err)
			}
			forker := e.path("forker")
			if err := e.cc(ctx, forker, []string{"-O2", "-Wl,-rpath," + e.work}, "forker.c", e.lib); err != nil {
				return failed(s, smp, err)
			}
			for _, n := range e.cfg.LibpulpProcs {
				for i := range e.cfg.HostRuns {
					for _, t := range alternate(tools, i) {
						if err := sideHostSample(ctx, e, t, forker, timeit, n, smp); err != nil {
							return failed(s, smp, fmt.Errorf("%s, %d processes: %w", t.name, n, err))
						}
					}
				}
			}
		}
	}
	s.Figures = withLibpulpRatios(smp.figures())
	s.Notes = append(s.Notes,
		"idle=K: the target has 1 thread spinning on the clock (calling the patched function), its main thread answering the harness, and K more threads blocked in pause(); each tool gets its own fresh target per sample, the tools alternated",
		"wall: the whole agent process (`trigger -p PID lp.so`, then `trigger -p PID --revert lp.so`); stall: the spinning thread's longest gap while the trigger ran",
		"procs=N: a parent and N forked children sleeping in pause(), alone in a PID namespace; one `trigger lp.so` without -p (then with --revert), timed inside the namespace; per-process: wall / (N+1)",
		"ratio: ulp's median / libpulp's median, both of this run (below 1: ulp is faster)",
		fmt.Sprintf("libpulp: %s", dir))
	return s
}

// alternate returns the tools in their order for sample i: each goes first
// every other sample.
func alternate(tools []sideTool, i int) []sideTool {
	if i%2 == 0 {
		return tools
	}
	return []sideTool{tools[1], tools[0]}
}

// sideTools returns ulp and libpulp, packing libpulp's container of the
// benchmark's replacement with libpulp's own packer.
func sideTools(ctx context.Context, e *env, dir string) ([]sideTool, error) {
	lp := e.path("lp_libpulp.so")
	if err := e.cc(ctx, lp, []string{"-shared", "-fPIC", "-O2", "-Wl,--build-id"}, "lp_bench.c"); err != nil {
		return nil, err
	}
	dsc := e.path("lp_libpulp.dsc")
	if err := os.WriteFile(dsc, []byte(fmt.Sprintf("%s\n@%s\nbench_target:bench_target_lp\n", lp, e.lib)), 0o644); err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "bin", "ulp")
	if _, err := e.command(ctx, bin, "packer", dsc); err != nil {
		return nil, fmt.Errorf("libpulp's packer (needs libelf1 and libjson-c5): %w", err)
	}
	return []sideTool{
		{name: "ulp", bin: e.ulp, runtime: e.runtime, lp: e.lp},
		{name: "libpulp", bin: bin, runtime: filepath.Join(dir, "lib", "libpulp.so.0.0.0"), lp: lp},
	}, nil
}

// sideTrigger runs `trigger -p PID [--revert] lp` of tool t and returns its
// wall time; anything but an exit 0 with SUCCESS is an error.
func (e *env) sideTrigger(ctx context.Context, t sideTool, pid int, revert bool) (time.Duration, error) {
	args := []string{"trigger", "-p", strconv.Itoa(pid)}
	if revert {
		args = append(args, "--revert")
	}
	args = append(args, t.lp)
	c := exec.CommandContext(ctx, t.bin, args...)
	t0 := time.Now()
	out, err := c.CombinedOutput()
	wall := time.Since(t0)
	if err != nil || !bytes.Contains(out, []byte("SUCCESS")) {
		return wall, fmt.Errorf("%s %s: %v: %s", t.name, strings.Join(args, " "), err, lastLines(string(out), 3))
	}
	return wall, nil
}

func sideTriggerSample(ctx context.Context, e *env, t sideTool, idle int, smp *samples) error {
	c := exec.CommandContext(ctx, e.spin, "1", strconv.Itoa(idle))
	c.Env = append(os.Environ(), "LD_PRELOAD="+t.runtime)
	p, err := startCmd(c)
	if err != nil {
		return err
	}
	defer p.stop()
	time.Sleep(20 * time.Millisecond) // let the threads settle
	prefix := fmt.Sprintf("idle=%d.", idle)
	for _, action := range []string{"apply", "revert"} {
		if _, err := p.gap(); err != nil {
			return err
		}
		wall, err := e.sideTrigger(ctx, t, p.Pid, action == "revert")
		if err != nil {
			return err
		}
		g, err := p.gap()
		if err != nil {
			return err
		}
		want := map[string]string{"apply": "2", "revert": "1"}[action]
		if v, err := p.ask("value"); err != nil || v != want {
			return fmt.Errorf("after %s the patched function returned %q (%v), want %s", action, v, err, want)
		}
		smp.add(prefix+action+".wall."+t.name, "µs", us(wall))
		smp.add(prefix+action+".stall."+t.name, "µs", us(g))
	}
	return nil
}

// namespaceMissing says why the whole-host samples cannot run in PID
// namespaces of their own ("" when they can).
func namespaceMissing() string {
	if os.Geteuid() != 0 {
		return "not running as root (the samples run in PID namespaces of their own)"
	}
	for _, tool := range []string{"unshare", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Sprintf("no %s on PATH (util-linux)", tool)
		}
	}
	return ""
}

var timeitLine = regexp.MustCompile(`(?m)^timeit (\d+) (\d+)$`)

// sideHostSample starts the forker with n children and tool t's runtime in
// a new PID and mount namespace (its own /proc), then times t's trigger
// without -p inside it: apply, then revert.
func sideHostSample(ctx context.Context, e *env, t sideTool, forker, timeit string, n int, smp *samples) error {
	c := exec.CommandContext(ctx, "unshare", "--pid", "--fork", "--mount-proc", "--kill-child",
		"env", "LD_PRELOAD="+t.runtime, forker, strconv.Itoa(n))
	p, err := startCmd(c)
	if err != nil {
		return err
	}
	defer p.stop()
	kids := testenv.Children(p.Pid) // unshare's one child: the namespace's first process
	if len(kids) == 0 {
		return errors.New("the namespace's first process was not found")
	}
	inner := kids[0]
	prefix := fmt.Sprintf("procs=%d.", n)
	for _, action := range []string{"apply", "revert"} {
		args := []string{"-t", strconv.Itoa(inner), "--pid", "--mount", timeit, t.bin, "trigger"}
		if action == "revert" {
			args = append(args, "--revert")
		}
		args = append(args, t.lp)
		cmd := exec.CommandContext(ctx, "nsenter", args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		m := timeitLine.FindStringSubmatch(stderr.String())
		if err != nil || m == nil {
			return fmt.Errorf("%s trigger %s in the namespace: %v: %s", t.name, action, err, lastLines(stdout.String()+stderr.String(), 3))
		}
		if got := bytes.Count(stdout.Bytes(), []byte("SUCCESS")) + bytes.Count(stderr.Bytes(), []byte("SUCCESS")); got != n+1 {
			return fmt.Errorf("%s trigger %s: %d SUCCESS lines, want %d: %s", t.name, action, got, n+1, lastLines(stdout.String()+stderr.String(), 3))
		}
		want := map[string]string{"apply": "2", "revert": "1"}[action]
		if v, err := p.ask("value"); err != nil || v != want {
			return fmt.Errorf("after %s the parent's bench_target returned %q (%v), want %s", action, v, err, want)
		}
		ns, _ := strconv.ParseInt(m[1], 10, 64)
		smp.add(prefix+action+".wall."+t.name, "ms", float64(ns)/1e6)
		smp.add(prefix+action+".per-process."+t.name, "µs/process", float64(ns)/1e3/float64(n+1))
	}
	return nil
}

// withLibpulpRatios sets, on every figure of ulp, libpulp's median of the
// same figure (this run) as its anchor.
func withLibpulpRatios(figs []Figure) []Figure {
	lp := map[string]float64{}
	for _, f := range figs {
		if base, ok := strings.CutSuffix(f.Name, ".libpulp"); ok {
			lp[base] = f.Median
		}
	}
	for i, f := range figs {
		if base, ok := strings.CutSuffix(f.Name, ".ulp"); ok && lp[base] > 0 {
			figs[i] = f.Against(lp[base], sameRunSource)
		}
	}
	return figs
}
