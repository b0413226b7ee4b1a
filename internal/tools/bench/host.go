package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"ulp/livepatch/report"
)

// hostSection measures one `ulp trigger -p NAME` over every process of a
// host: a preloaded parent forks N children (each size of -host-procs), and
// the agent applies a container to all N+1, then reverts it with
// --revert-all=LIB alone. Figures: the wall time of the whole command, the
// wall time per process (section libpulp compares it with libpulp's, in
// the same run), and the pause each process
// saw (every process's pause_us is one sample).
func hostSection(ctx context.Context, e *env) Section {
	s := Section{Title: "whole host: one ulp trigger over N processes forked from one preloaded parent"}
	forker := e.path("forker")
	if err := e.cc(ctx, forker, []string{"-O2", "-Wl,-rpath," + e.work}, "forker.c", e.lib); err != nil {
		return failed(s, nil, err)
	}
	smp := newSamples()
	for _, n := range e.cfg.HostProcs {
		for range e.cfg.HostRuns {
			if err := hostSample(ctx, e, forker, n, smp); err != nil {
				return failed(s, smp, fmt.Errorf("%d processes: %w", n, err))
			}
		}
	}
	s.Figures = smp.figures()
	s.Notes = append(s.Notes,
		"procs=N: N children sleeping in pause() plus their parent, all candidates of `ulp trigger --json -p forker` (default --jobs, 2 per core)",
		"wall: the whole ulp process; per-process: wall / (N+1); pause: every process's pause_us (the time its threads were stopped)",
		fmt.Sprintf("runs per size: %d; larger sizes: -host-procs 100,1000,4000", e.cfg.HostRuns))
	return s
}

func hostSample(ctx context.Context, e *env, forker string, n int, smp *samples) error {
	p, err := e.start(ctx, true, forker, strconv.Itoa(n))
	if err != nil {
		return err
	}
	defer p.stop()
	prefix := fmt.Sprintf("procs=%d.", n)
	for _, step := range []struct {
		name string
		args []string
		want string
	}{
		{"apply", []string{e.lp}, "2"},
		{"revert-all", []string{"--revert-all=libbench.so.1"}, "1"},
	} {
		t0 := time.Now()
		out, err := e.command(ctx, e.ulp, append([]string{"trigger", "--json", "-p", "forker"}, step.args...)...)
		wall := time.Since(t0)
		if err != nil {
			return err
		}
		var sum report.Summary
		var pauses []float64
		for _, l := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
			var kind struct{ Type string }
			if err := json.Unmarshal(l, &kind); err != nil {
				return fmt.Errorf("trigger output %q: %w", l, err)
			}
			if kind.Type == report.TypeSummary {
				if err := json.Unmarshal(l, &sum); err != nil {
					return err
				}
				continue
			}
			var r report.Process
			if err := json.Unmarshal(l, &r); err != nil {
				return fmt.Errorf("trigger output %q: %w", l, err)
			}
			if r.Result != report.Success {
				return fmt.Errorf("%s: pid %d: %s %s", step.name, r.PID, r.Result, r.Reason)
			}
			pauses = append(pauses, float64(r.Timings.PauseUS))
		}
		if sum.Patched != n+1 || sum.Candidates != n+1 {
			return fmt.Errorf("%s: summary %+v, want %d patched", step.name, sum, n+1)
		}
		if v, err := p.ask("value"); err != nil || v != step.want {
			return fmt.Errorf("after %s the parent's bench_target returned %q (%v), want %s", step.name, v, err, step.want)
		}
		smp.add(prefix+step.name+".wall", "ms", float64(wall.Microseconds())/1e3)
		smp.add(prefix+step.name+".per-process", "µs/process", us(wall)/float64(n+1))
		for _, v := range pauses {
			smp.add(prefix+step.name+".pause", "µs", v)
		}
	}
	return nil
}
