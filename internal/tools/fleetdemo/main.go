package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"ulp/internal/testenv"
	"ulp/livepatch/trigger/triggertest"
	"ulp/remote/remotetest/sshfleet"
)

func main() {
	hosts := flag.Int("hosts", 8, "hosts in the local fleet")
	procs := flag.Int("procs", 2, "preloaded programs per host")
	verbose := flag.Bool("v", false, "log the fleet's set-up on stderr")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if err := run(ctx, log, os.Stdout, os.Stderr, *hosts, *procs); err != nil {
		fmt.Fprintf(os.Stderr, "fleet-demo: %v\n", err)
		os.Exit(1)
	}
}

// run brings the fleet up, runs the demo and tears the fleet down.
func run(ctx context.Context, log *slog.Logger, stdout, stderr io.Writer, hosts, procs int) error {
	if hosts < 2 || hosts > 200 || procs < 1 || procs > 16 {
		return fmt.Errorf("-hosts must be 2 to 200 and -procs 1 to 16 (got %d, %d)", hosts, procs)
	}
	var demoErr error
	skipped, err := sshfleet.Run(ctx, log, "fleet-demo", func(tb testing.TB) {
		d := &demo{ctx: ctx, tb: tb, out: stdout, errOut: stderr}
		demoErr = d.run(hosts, procs)
	})
	if skipped {
		return fmt.Errorf("this machine cannot run the local fleet (root, sshd, gcc and `make` needed): %w", err)
	}
	return errors.Join(err, demoErr)
}

// demo is one run.
type demo struct {
	ctx         context.Context
	tb          testing.TB
	out, errOut io.Writer
	dir         string // the operator's folder: config, inventory, container, results
	ulpfleet    string
	procs       []*sshfleet.Proc
}

// The value calc_value returns before the patch and with it.
const (
	original = "100"
	patched  = "200"
)

func (d *demo) run(hosts, perHost int) error {
	tb := d.tb
	testenv.Require(tb, testenv.Root, testenv.Ptrace, testenv.CC, testenv.SSHD)
	d.ulpfleet = testenv.Artifact(tb, "ulpfleet")
	runtime := testenv.Artifact(tb, "libpulp.so.0")
	d.dir = tb.TempDir()

	d.say("building a patchable library (libcalc.so.1), a program using it and a livepatch for calc_value")
	fx := buildFixture(tb)
	container := filepath.Join(d.dir, "fix-calc.so")
	if err := copyFile(fx.LP["lp200"], container); err != nil {
		return err
	}

	d.say("starting %d hosts: real sshd, each in its own namespaces on its own loopback address", hosts)
	f := sshfleet.Start(tb, hosts)
	for _, h := range f.Hosts {
		for range perHost {
			d.procs = append(d.procs, h.Start(tb, []string{"LD_PRELOAD=" + runtime}, fx.App))
		}
	}
	d.say("started %d programs with the runtime preloaded (%d per host); each says calc_value() = %s", len(d.procs), perHost, original)
	if err := d.values(original); err != nil {
		return err
	}
	if err := d.writeSettings(f); err != nil {
		return err
	}

	steps := []struct {
		say  string
		args []string
		want string // every program's value afterwards ("": not checked)
	}{
		{"preflight of every host (connect, host key, arch, kernel, agent, runtime, free space)", []string{"ping"}, ""},
		{"the plan: host01 (group canary) first, then the rest; nothing is contacted", []string{"plan", "fix-calc.so"}, ""},
		{"the rollout: canary, then all", []string{"apply", "fix-calc.so"}, patched},
		{"the report from every host", []string{"status"}, ""},
		{"what the runtime and the agent logged in the processes of host01", []string{"-l", "host01", "messages"}, ""},
		{"roll back", []string{"revert", "fix-calc.so"}, original},
		{"the report again", []string{"status"}, ""},
	}
	for _, s := range steps {
		d.say("%s", s.say)
		if err := d.ulp(s.args...); err != nil {
			return err
		}
		if s.want != "" {
			if err := d.values(s.want); err != nil {
				return err
			}
			d.say("every program now says calc_value() = %s, without a restart", s.want)
		}
	}
	d.say("tearing the fleet down")
	return nil
}

// buildFixture compiles the trigger fixture's library, program and the
// lp200 livepatch (calc_value returns 200).
func buildFixture(tb testing.TB) *triggertest.Fixture {
	dir := tb.TempDir()
	fx := &triggertest.Fixture{Dir: dir, Calc: filepath.Join(dir, "libcalc.so.1"),
		Two: filepath.Join(dir, "libtwo.so.1"), App: filepath.Join(dir, "app"), LP: map[string]string{}}
	lib := func(out, soname, src string, extra ...string) {
		args := append(append([]string{"-shared", "-fPIC", "-Wl,-soname," + soname}, triggertest.Patchable...), extra...)
		triggertest.Compile(tb, out, args, src)
	}
	lib(fx.Calc, "libcalc.so.1", "libcalc.c", "-Wl,-Bsymbolic", "-falign-functions=1")
	lib(fx.Two, "libtwo.so.1", "libtwo.c")
	triggertest.Compile(tb, fx.App, append([]string{"-fPIE", "-pie", "-Wl,-rpath," + dir}, triggertest.Patchable...),
		"app.c", fx.Calc, fx.Two)
	fx.Pack(tb, "lp200", "lp_value.c", []string{"-DVALUE=" + patched}, fx.Calc, "calc_value:calc_value_lp")
	return fx
}

// writeSettings writes the operator's inventory and ./ulpfleet.yaml, and
// shows them.
func (d *demo) writeSettings(f *sshfleet.Fleet) error {
	var inv strings.Builder
	inv.WriteString("all:\n  vars: {ansible_user: root}\n  children:\n    canary:\n      hosts:\n")
	for i, h := range f.Hosts {
		if i == 1 {
			inv.WriteString("    rest:\n      hosts:\n")
		}
		fmt.Fprintf(&inv, "        %s: {ansible_host: %s}\n", h.Name, h.Addr)
	}
	cfg := fmt.Sprintf("inventory: hosts.yaml\nknown-hosts: [%s]\nidentity: [%s]\ncanary: [group:canary]\nresults: %s\n",
		f.KnownHosts, f.Identity, filepath.Join(d.dir, "last-run.ndjson"))
	for _, w := range []struct{ name, body string }{{"hosts.yaml", inv.String()}, {"ulpfleet.yaml", cfg}} {
		if err := os.WriteFile(filepath.Join(d.dir, w.name), []byte(w.body), 0o644); err != nil {
			return err
		}
		d.say("%s:\n%s", w.name, indent(w.body))
	}
	return nil
}

// ulp runs build/ulpfleet with args in the operator's folder (so it reads
// ./ulpfleet.yaml), on this process's stdout and stderr: on a terminal, a
// rollout shows its progress display.
func (d *demo) ulp(args ...string) error {
	fmt.Fprintf(d.out, "$ ulpfleet %s\n", strings.Join(args, " "))
	cmd := exec.CommandContext(d.ctx, d.ulpfleet, args...)
	cmd.Dir = d.dir
	cmd.Stdout, cmd.Stderr = d.out, d.errOut
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "ULPFLEET_") { // the demo's settings only
			cmd.Env = append(cmd.Env, e)
		}
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ulpfleet %s: %w", strings.Join(args, " "), err)
	}
	fmt.Fprintln(d.out)
	return nil
}

// values checks that every program's calc_value() returns want.
func (d *demo) values(want string) error {
	var errs []error
	for i, p := range d.procs {
		if got := p.Ask(d.tb, "value"); got != want {
			errs = append(errs, fmt.Errorf("program %d on %s: calc_value() = %s, want %s", i, p.Host.Name, got, want))
		}
	}
	return errors.Join(errs...)
}

func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, "== "+format+"\n", args...)
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}
