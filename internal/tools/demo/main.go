package main

import (
	"bufio"
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

//go:embed src
var sources embed.FS

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, buildDir(), os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

// buildDir returns where `make` put ulp and libpulp.so.0.
func buildDir() string {
	if d := os.Getenv("ULP_BUILD_DIR"); d != "" {
		return d
	}
	return "build"
}

// The lines the demo program prints before, during and after the patch.
const (
	original = "Hello from the original libgreet"
	patched  = "Hello from the LIVE PATCH"
)

// demo holds the state of one run.
type demo struct {
	out   io.Writer
	ulp   string // build/ulp
	work  string // the temporary folder with the built files
	lines chan string
}

func run(ctx context.Context, build string, out io.Writer) error {
	build, err := filepath.Abs(build)
	if err != nil {
		return err
	}
	d := &demo{out: out, ulp: filepath.Join(build, "ulp")}
	runtime := filepath.Join(build, "libpulp.so.0")
	for _, f := range []string{d.ulp, runtime} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("%w (run make first)", err)
		}
	}
	if d.work, err = os.MkdirTemp("", "ulp-demo-"); err != nil {
		return err
	}
	defer os.RemoveAll(d.work)

	d.step("1. Build a library, a program that uses it, and a livepatch (in %s)", d.work)
	if err := d.writeSources(); err != nil {
		return err
	}
	pad := "-fpatchable-function-entry=16,14"
	for _, c := range [][]string{
		{"-shared", "-fPIC", "-O2", "-g", pad, "-Wl,-soname,libgreet.so.1", "-Wl,--build-id", "-o", "libgreet.so.1", "libgreet.c"},
		{"-O2", "-o", "demo", "demo.c", "libgreet.so.1", "-Wl,-rpath," + d.work},
		{"-shared", "-fPIC", "-O2", "-Wl,--build-id", "-o", "greet_livepatch.so", "greet_livepatch.c"},
	} {
		if err := d.cmd(ctx, "gcc", c...); err != nil {
			return err
		}
	}
	d.say("libgreet.so.1 has 14 spare bytes before greeting() and 2 after its entry;")
	d.say("`ulp post` merges the 2 entry NOPs into one instruction so no thread can stop between them.")
	if err := d.cmd(ctx, d.ulp, "post", "libgreet.so.1"); err != nil {
		return err
	}

	d.step("2. Pack the livepatch: the description greet.dsc says what replaces what")
	d.file("greet.dsc")
	if err := d.cmd(ctx, d.ulp, "packer", "greet.dsc"); err != nil {
		return err
	}

	d.step("3. Start the program with the runtime preloaded")
	d.say("$ LD_PRELOAD=%s ./demo", runtime)
	prog := exec.CommandContext(ctx, filepath.Join(d.work, "demo"))
	prog.Dir = d.work
	prog.Env = append(os.Environ(), "LD_PRELOAD="+runtime)
	prog.Stderr = os.Stderr
	stdout, err := prog.StdoutPipe()
	if err != nil {
		return err
	}
	if err := prog.Start(); err != nil {
		return err
	}
	d.lines = make(chan string, 64)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer close(d.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			d.lines <- sc.Text()
		}
	}()
	defer func() {
		prog.Process.Kill()
		<-readDone
		prog.Wait()
	}()
	pid := fmt.Sprint(prog.Process.Pid)
	if err := d.show(ctx, original, 3); err != nil {
		return err
	}

	d.step("4. Apply the live patch to the running process %s", pid)
	if err := d.cmd(ctx, d.ulp, "trigger", "-p", pid, "greet_livepatch.so"); err != nil {
		return err
	}
	if err := d.show(ctx, patched, 3); err != nil {
		return err
	}
	d.say("Same process, no restart; the call counter kept counting through the patch's data reference.")
	if err := d.cmd(ctx, d.ulp, "patches", "-p", pid); err != nil {
		return err
	}

	d.step("5. Revert the live patch")
	if err := d.cmd(ctx, d.ulp, "trigger", "-p", pid, "--revert", "greet_livepatch.so"); err != nil {
		return err
	}
	if err := d.show(ctx, original, 3); err != nil {
		return err
	}

	d.step("6. What the runtime and ulp logged inside the process")
	if err := d.cmd(ctx, d.ulp, "messages", "-p", pid); err != nil {
		return err
	}
	d.step("Done: patched and reverted while process %s kept running.", pid)
	return nil
}

func (d *demo) step(format string, args ...any) {
	fmt.Fprintf(d.out, "\n==> "+format+"\n", args...)
}

func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, "    "+format+"\n", args...)
}

func (d *demo) writeSources() error {
	entries, err := sources.ReadDir("src")
	if err != nil {
		return err
	}
	for _, e := range entries {
		b, err := sources.ReadFile("src/" + e.Name())
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(d.work, e.Name()), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// file prints a source file of the demo.
func (d *demo) file(name string) {
	b, err := os.ReadFile(filepath.Join(d.work, name))
	if err != nil {
		return
	}
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		d.say("  %s", l)
	}
}

// cmd runs a command in the work folder, echoing it and its output.
func (d *demo) cmd(ctx context.Context, name string, args ...string) error {
	shown := name
	if filepath.IsAbs(name) {
		shown = filepath.Base(name)
	}
	d.say("$ %s %s", shown, strings.Join(args, " "))
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, name, args...)
	c.Dir = d.work
	out, err := c.CombinedOutput()
	for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if l != "" {
			d.say("  %s", l)
		}
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", shown, strings.Join(args, " "), err)
	}
	return nil
}

// errTimeout means the program did not print the expected line in time.
var errTimeout = errors.New("the program did not print the expected line within 10s")

// show waits for the program to print want, then prints n of its lines
// (all of which must contain want).
func (d *demo) show(ctx context.Context, want string, n int) error {
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for n > 0 {
		select {
		case l, ok := <-d.lines:
			if !ok {
				return errors.New("the program exited")
			}
			if !strings.Contains(l, want) {
				continue // a line printed before the change took effect
			}
			fmt.Fprintf(d.out, "    | %s\n", l)
			n--
		case <-timeout.C:
			return fmt.Errorf("%w: %q", errTimeout, want)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
