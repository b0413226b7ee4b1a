package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// containerSection generates a library of cfg.Funcs padded functions and a
// livepatch replacing every one of them, then times `ulp packer` (with -o,
// so every run packs the same input) and `ulp dump` on the result.
func containerSection(ctx context.Context, e *env) Section {
	n := e.cfg.Funcs
	s := Section{Title: fmt.Sprintf("ulp packer and ulp dump on a container of %d functions", n)}
	smp := newSamples()
	lib, lp, dsc := e.path("libbig.so.1"), e.path("lp_big.so"), e.path("big.dsc")
	var libC, lpC, lines strings.Builder
	libC.WriteString("#define KEEP __attribute__((noipa))\n")
	lpC.WriteString("#define KEEP __attribute__((noipa))\n")
	fmt.Fprintf(&lines, "! %d functions: a container of make bench\n%s\n@%s\n", n, lp, lib)
	for i := range n {
		fmt.Fprintf(&libC, "KEEP long big_%04d(long x) { return x + %d; }\n", i, i)
		fmt.Fprintf(&lpC, "KEEP long big_%04d_lp(long x) { return x + %d; }\n", i, i+1)
		fmt.Fprintf(&lines, "big_%04d:big_%04d_lp\n", i, i)
	}
	for name, body := range map[string]string{"big.c": libC.String(), "lp_big.c": lpC.String(), dsc: lines.String()} {
		if !strings.HasPrefix(name, "/") {
			name = e.path(name)
		}
		if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
			return failed(s, nil, err)
		}
	}
	if err := e.cc(ctx, lib, append([]string{"-shared", "-fPIC", "-Wl,-soname,libbig.so.1"}, patchFlags...), "big.c"); err != nil {
		return failed(s, nil, err)
	}
	if err := e.cc(ctx, lp, []string{"-shared", "-fPIC", "-O2", "-Wl,--build-id"}, "lp_big.c"); err != nil {
		return failed(s, nil, err)
	}
	out := e.path("big_container.so")
	timed := func(name string, args ...string) error {
		t0 := time.Now()
		if _, err := e.command(ctx, e.ulp, args...); err != nil {
			return err
		}
		smp.add(name, "ms", float64(time.Since(t0).Microseconds())/1e3)
		return nil
	}
	for range e.cfg.Runs {
		if err := timed("packer", "packer", "-o", out, dsc); err != nil {
			return failed(s, smp, err)
		}
	}
	for range e.cfg.Runs {
		if err := timed("dump", "dump", out); err != nil {
			return failed(s, smp, err)
		}
		if err := timed("dump.json", "dump", "--json", out); err != nil {
			return failed(s, smp, err)
		}
	}
	// Apply and revert the whole container in a small process that maps
	// libbig.so.1 (preloaded after the runtime).
	for range e.cfg.Runs {
		if err := bigTrigger(ctx, e, out, lib, smp); err != nil {
			return failed(s, smp, err)
		}
	}
	st, err := os.Stat(out)
	if err != nil {
		return failed(s, smp, err)
	}
	s.Figures = smp.figures()
	s.Notes = []string{
		fmt.Sprintf("wall time of the whole ulp process; the container is %d bytes (livepatch code and its .ulp/.ulp.rev sections)", st.Size()),
		"packer reads the description, both ELF files, checks every function's pad and writes the container atomically",
		"trigger.*: `ulp trigger` of this container (every function replaced at once) on a fresh small process with libbig.so.1 preloaded; the phases are the agent's --json timings",
	}
	return s
}

// bigTrigger applies and reverts the container of every function of lib in
// a fresh process and records the wall times and the agent's phases.
func bigTrigger(ctx context.Context, e *env, container, lib string, smp *samples) error {
	c := exec.CommandContext(ctx, e.percall)
	c.Env = append(os.Environ(), "LD_PRELOAD="+e.runtime+" "+lib)
	p, err := startCmd(c)
	if err != nil {
		return err
	}
	defer p.stop()
	for _, args := range [][]string{{container}, {"--revert", container}} {
		wall, rec, err := e.trigger(ctx, p.Pid, args...)
		if err != nil {
			return err
		}
		name := "trigger.apply"
		if len(args) == 2 {
			name = "trigger.revert"
		}
		smp.add(name+".wall", "ms", float64(wall.Microseconds())/1e3)
		t := rec.Timings
		for _, ph := range []struct {
			name string
			v    int64
		}{{"load", t.LoadUS}, {"write", t.WriteUS}, {"pause", t.PauseUS}, {"total", t.TotalUS}} {
			smp.add(name+"."+ph.name, "ms", float64(ph.v)/1e3)
		}
	}
	return nil
}
