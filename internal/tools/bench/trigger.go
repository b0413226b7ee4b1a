package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"ulp/livepatch/report"
)

// triggerSection measures `ulp trigger -p PID` on a fresh target per
// sample, for each thread count: the agent's wall time (the whole ulp
// process, as a user runs it), the largest gap of the target's spinning
// thread during the trigger, the same gap over an idle interval as long as
// the apply (the machine's own noise), and the agent's --json phases.
func triggerSection(ctx context.Context, e *env) Section {
	s := Section{Title: "one process: ulp trigger -p PID (pad and entry mechanisms), fresh target per sample"}
	smp := newSamples()
	for _, m := range e.mechanisms() {
		for _, n := range e.cfg.Threads {
			for range e.cfg.Runs {
				if err := triggerSample(ctx, e, m, n, smp); err != nil {
					return failed(s, smp, fmt.Errorf("%s, %d threads: %w", m.name, n, err))
				}
			}
		}
	}
	s.Figures = smp.figures()
	s.Notes = append(s.Notes,
		"pad/entry: the mechanism (pad: the function's 16-byte pad; entry: a 5-byte jmp over the entry of a function without pad); threads=N: N worker threads (one spins on the clock calling the patched functions, the others wake every 10 ms and call them) plus the main thread, which answers the harness",
		"wall: the whole `ulp trigger --json` process; gap: the spinning thread's longest gap while the trigger ran; idle-gap: the same over an idle interval as long as the apply",
		"attach/load/write/detach/pause/total: the agent's own --json timings; the pause is the time every thread was stopped")
	return s
}

func triggerSample(ctx context.Context, e *env, m mechanism, threads int, smp *samples) error {
	p, err := e.start(ctx, true, e.spin, strconv.Itoa(threads))
	if err != nil {
		return err
	}
	defer p.stop()
	// Let the threads settle, then start every measured interval with a reset.
	time.Sleep(20 * time.Millisecond)
	prefix := fmt.Sprintf("%s.threads=%d.", m.name, threads)
	var applyWall time.Duration
	for _, action := range []string{"apply", "revert"} {
		if _, err := p.gap(); err != nil {
			return err
		}
		args := []string{m.lp}
		if action == "revert" {
			args = []string{"--revert", m.lp}
		}
		wall, rec, err := e.trigger(ctx, p.Pid, args...)
		if err != nil {
			return err
		}
		g, err := p.gap()
		if err != nil {
			return err
		}
		want := map[string]string{"apply": "2", "revert": "1"}[action]
		if v, err := p.ask(m.ask); err != nil || v != want {
			return fmt.Errorf("after %s the patched function returned %q (%v), want %s", action, v, err, want)
		}
		if action == "apply" {
			applyWall = wall
		}
		addTimings(smp, prefix+action, wall, g, rec.Timings)
	}
	if _, err := p.gap(); err != nil {
		return err
	}
	time.Sleep(applyWall)
	g, err := p.gap()
	if err != nil {
		return err
	}
	smp.add(prefix+"idle-gap", "µs", us(g))
	return nil
}

func addTimings(smp *samples, prefix string, wall, gap time.Duration, t report.Timings) {
	smp.add(prefix+".wall", "µs", us(wall))
	smp.add(prefix+".gap", "µs", us(gap))
	for _, ph := range []struct {
		name string
		v    int64
	}{{"attach", t.AttachUS}, {"load", t.LoadUS}, {"write", t.WriteUS}, {"detach", t.DetachUS}, {"pause", t.PauseUS}, {"total", t.TotalUS}} {
		smp.add(prefix+"."+ph.name, "µs", float64(ph.v))
	}
}
