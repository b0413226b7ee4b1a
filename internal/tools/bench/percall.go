package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// percallSection measures, inside one running program, the ns per call of
// bench_plain (no pad), bench_padded (padded, never patched), bench_target
// (padded) and bench_entry (no pad), first unpatched and then after `ulp
// trigger` patched the last two live (pad and entry mechanisms). The four
// are measured in turns in every sample, so they see the same machine.
func percallSection(ctx context.Context, e *env) Section {
	s := Section{Title: fmt.Sprintf("cost per call, measured in the running program (%d calls per sample)", e.cfg.Calls)}
	smp := newSamples()
	p, err := e.start(ctx, true, e.percall)
	if err != nil {
		return failed(s, nil, err)
	}
	defer p.stop()
	measure := func(names ...string) error {
		for range e.cfg.Runs {
			line, err := p.ask(fmt.Sprintf("measure %d", e.cfg.Calls))
			if err != nil {
				return err
			}
			f := strings.Fields(line)
			if len(f) != len(names) {
				return fmt.Errorf("percall: answer %q", line)
			}
			for i, n := range names {
				if n == "" {
					continue
				}
				v, err := strconv.ParseFloat(f[i], 64)
				if err != nil {
					return fmt.Errorf("percall: answer %q: %w", line, err)
				}
				smp.add(n, "ns", v)
			}
		}
		return nil
	}
	// A first sample warms the caches and the CPU's clock up; it is dropped.
	if _, err := p.ask(fmt.Sprintf("measure %d", e.cfg.Calls)); err != nil {
		return failed(s, smp, err)
	}
	if err := measure("plain", "padded", "pad.unpatched", "entry.unpatched"); err != nil {
		return failed(s, smp, err)
	}
	for _, m := range e.mechanisms() {
		if _, _, err := e.trigger(ctx, p.Pid, m.lp); err != nil {
			return failed(s, smp, err)
		}
		if v, err := p.ask(m.ask); err != nil || v != "2" {
			return failed(s, smp, fmt.Errorf("after the %s patch the function returned %q (%v), want 2", m.name, v, err))
		}
	}
	if err := measure("plain", "padded", "pad.patched", "entry.patched"); err != nil {
		return failed(s, smp, err)
	}
	s.Figures = smp.figures()
	s.Notes = []string{
		"plain: no entry pad; padded: -fpatchable-function-entry=16,14 after ulp post, never patched (one 2-byte NOP executed); pad: a padded function before and after its live patch (the entry's short jump back into the pad, its absolute jump, then the replacement, which does the same work); entry: a function without pad before and after its live patch (a 5-byte jmp rel32 over its entry to the replacement)",
		"a sample is, for each function, the fastest of 5 batches of calls/5 calls, the four functions' batches taking turns in the same program; plain and padded are sampled before and after the patches",
		"each call's argument is the previous call's result, so this is the latency of a dependent call through a function pointer",
	}
	return s
}
