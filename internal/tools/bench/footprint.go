package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// footprintSection measures VmSize and VmRSS of the small per-call program
// without the runtime, with it preloaded, and after one patch, each in a
// fresh process per sample.
func footprintSection(ctx context.Context, e *env) Section {
	s := Section{Title: "runtime footprint of a small process (VmSize, VmRSS)"}
	smp := newSamples()
	for range e.cfg.Runs {
		if err := footprintSample(ctx, e, smp); err != nil {
			return failed(s, smp, err)
		}
	}
	s.Figures = smp.figures()
	s.Notes = []string{
		"without: the program alone; with-runtime: LD_PRELOAD=libpulp.so.0; after-patch: after one `ulp trigger` (the container is dlopen'ed in the process)",
		"delta figures are per sample, in KiB",
	}
	return s
}

func footprintSample(ctx context.Context, e *env, smp *samples) error {
	read := func(preload, patch bool) (size, rss float64, err error) {
		p, err := e.start(ctx, preload, e.percall)
		if err != nil {
			return 0, 0, err
		}
		defer p.stop()
		if patch {
			if _, _, err := e.trigger(ctx, p.Pid, e.lp); err != nil {
				return 0, 0, err
			}
		}
		return vmStatus(p.Pid)
	}
	size0, rss0, err := read(false, false)
	if err != nil {
		return err
	}
	size1, rss1, err := read(true, false)
	if err != nil {
		return err
	}
	size2, rss2, err := read(true, true)
	if err != nil {
		return err
	}
	smp.add("without.VmSize", "KiB", size0)
	smp.add("without.VmRSS", "KiB", rss0)
	smp.add("with-runtime.VmSize", "KiB", size1)
	smp.add("with-runtime.VmRSS", "KiB", rss1)
	smp.add("after-patch.VmSize", "KiB", size2)
	smp.add("after-patch.VmRSS", "KiB", rss2)
	smp.add("runtime.delta.VmSize", "KiB", size1-size0)
	smp.add("runtime.delta.VmRSS", "KiB", rss1-rss0)
	smp.add("patch.delta.VmSize", "KiB", size2-size1)
	smp.add("patch.delta.VmRSS", "KiB", rss2-rss1)
	return nil
}

// vmStatus returns VmSize and VmRSS of pid in KiB.
func vmStatus(pid int) (size, rss float64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	found := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmSize" && k != "VmRSS") {
			continue
		}
		n, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/status: %s: %w", pid, k, err)
		}
		if k == "VmSize" {
			size = n
		} else {
			rss = n
		}
		found++
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("/proc/%d/status: no VmSize or VmRSS", pid)
	}
	return size, rss, sc.Err()
}
