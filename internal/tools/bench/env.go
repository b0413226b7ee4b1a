package main

import (
	"bufio"
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"ulp/livepatch/report"
)

//go:embed src
var sources embed.FS

// patchFlags are the cc flags of a livepatchable object.
var patchFlags = []string{"-O2", "-g", "-fpatchable-function-entry=16,14", "-Wl,--build-id"}

// env is what every section shares: the artifacts of make and the built
// C fixtures, in a temporary folder removed by close.
type env struct {
	cfg     Config
	log     *slog.Logger
	ulp     string // build/ulp
	fleet   string // build/ulpfleet
	runtime string // build/libpulp.so.0
	work    string

	lib     string // libbench.so.1 (padded, posted)
	percall string // the per-call program (also the small process)
	spin    string // the pause target
	lp      string // the packed livepatch of bench_target (pad mechanism)
	lpEntry string // the packed livepatch of bench_entry (entry mechanism)
}

// mechanism is one way of redirecting a function, with the livepatch that
// uses it and the fixture's question that calls the patched function.
type mechanism struct {
	name string // "pad" or "entry", as in `ulp dump`
	lp   string
	ask  string // "value" or "entry": prints the function's result for 0 (1 unpatched, 2 patched)
}

func (e *env) mechanisms() []mechanism {
	return []mechanism{{"pad", e.lp, "value"}, {"entry", e.lpEntry, "entry"}}
}

func newEnv(ctx context.Context, cfg Config, log *slog.Logger) (*env, error) {
	build, err := filepath.Abs(cfg.Build)
	if err != nil {
		return nil, err
	}
	e := &env{cfg: cfg, log: log, ulp: filepath.Join(build, "ulp"), fleet: filepath.Join(build, "ulpfleet"),
		runtime: filepath.Join(build, "libpulp.so.0")}
	for _, f := range []string{e.ulp, e.runtime} {
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("%w (run make first)", err)
		}
	}
	if e.work, err = os.MkdirTemp("", "ulp-bench-"); err != nil {
		return nil, err
	}
	if err := e.buildFixtures(ctx); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

func (e *env) close() { os.RemoveAll(e.work) }

// path returns the path of name in the work folder.
func (e *env) path(name string) string { return filepath.Join(e.work, name) }

func (e *env) buildFixtures(ctx context.Context) error {
	entries, err := sources.ReadDir("src")
	if err != nil {
		return err
	}
	for _, ent := range entries {
		b, err := sources.ReadFile("src/" + ent.Name())
		if err != nil {
			return err
		}
		if err := os.WriteFile(e.path(ent.Name()), b, 0o644); err != nil {
			return err
		}
	}
	e.lib, e.percall, e.spin = e.path("libbench.so.1"), e.path("percall"), e.path("spin")
	if err := e.cc(ctx, e.lib, append([]string{"-shared", "-fPIC", "-Wl,-soname,libbench.so.1"}, patchFlags...), "libbench.c"); err != nil {
		return err
	}
	if _, err := e.command(ctx, e.ulp, "post", e.lib); err != nil {
		return err
	}
	prog := []string{"-O2", "-Wl,-rpath," + e.work}
	if err := e.cc(ctx, e.percall, prog, "percall.c", e.lib); err != nil {
		return err
	}
	if err := e.cc(ctx, e.spin, append(prog, "-pthread"), "spin.c", e.lib); err != nil {
		return err
	}
	if e.lp, err = e.pack(ctx, "lp_bench", "lp_bench.c", e.lib, []string{"bench_target:bench_target_lp"}); err != nil {
		return err
	}
	if e.lpEntry, err = e.pack(ctx, "lp_entry", "lp_entry.c", e.lib, []string{"bench_entry:bench_entry_lp"}); err != nil {
		return err
	}
	// The packer chooses the mechanism from the target's code: check it.
	for _, m := range e.mechanisms() {
		out, err := e.command(ctx, e.ulp, "dump", m.lp)
		if err != nil {
			return err
		}
		if !strings.Contains(string(out), "  "+m.name+" entry+") {
			return fmt.Errorf("%s was not packed with the %s mechanism:\n%s", m.lp, m.name, out)
		}
	}
	return nil
}

// cc compiles srcs (names in the work folder, or paths) into out.
func (e *env) cc(ctx context.Context, out string, args []string, srcs ...string) error {
	argv := append(append([]string{}, args...), "-o", out)
	for _, s := range srcs {
		if !filepath.IsAbs(s) {
			s = e.path(s)
		}
		argv = append(argv, s)
	}
	_, err := e.command(ctx, "cc", argv...)
	return err
}

// pack builds livepatch name from src and packs it for target with the
// description lines, with `ulp packer`; it returns the container's path.
func (e *env) pack(ctx context.Context, name, src, target string, lines []string) (string, error) {
	so := e.path(name + ".so")
	if err := e.cc(ctx, so, []string{"-shared", "-fPIC", "-O2", "-Wl,--build-id"}, src); err != nil {
		return "", err
	}
	dsc := e.path(name + ".dsc")
	body := fmt.Sprintf("! %s: a livepatch of make bench\n%s\n@%s\n%s\n", name, so, target, strings.Join(lines, "\n"))
	if err := os.WriteFile(dsc, []byte(body), 0o644); err != nil {
		return "", err
	}
	if _, err := e.command(ctx, e.ulp, "packer", dsc); err != nil {
		return "", err
	}
	return so, nil
}

// command runs name with args (at most 2 minutes) and returns its stdout;
// the error carries its stderr.
func (e *env) command(ctx context.Context, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", filepath.Base(name), strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// trigger runs `ulp trigger --json -p PID` with args and returns its wall
// time and the process record; anything but SUCCESS is an error.
func (e *env) trigger(ctx context.Context, pid int, args ...string) (time.Duration, report.Process, error) {
	argv := append([]string{"trigger", "--json", "-p", fmt.Sprint(pid)}, args...)
	t0 := time.Now()
	out, err := e.command(ctx, e.ulp, argv...)
	wall := time.Since(t0)
	var rec report.Process
	for _, l := range bytes.Split(out, []byte("\n")) {
		var r report.Process
		if json.Unmarshal(l, &r) == nil && r.Type == report.TypeProcess {
			rec = r
		}
	}
	if err != nil {
		return wall, rec, err
	}
	if rec.Result != report.Success {
		return wall, rec, fmt.Errorf("ulp %s: %s %s", strings.Join(argv, " "), rec.Result, rec.Reason)
	}
	return wall, rec, nil
}

// proc is a running C fixture that answers lines on stdin.
type proc struct {
	cmd  *exec.Cmd
	in   *os.File
	out  *os.File
	rd   *bufio.Reader
	Pid  int
	done chan struct{}
}

// errNoAnswer means the program did not answer in time.
var errNoAnswer = errors.New("no answer within 30s")

// start starts a fixture program (with the runtime preloaded when preload),
// killed when ctx ends, and waits for its "ready" line. Stop it with stop.
func (e *env) start(ctx context.Context, preload bool, name string, args ...string) (*proc, error) {
	c := exec.CommandContext(ctx, name, args...)
	c.Env = os.Environ()
	if preload {
		c.Env = append(c.Env, "LD_PRELOAD="+e.runtime)
	}
	return startCmd(c)
}

// startCmd starts c with pipes on its stdin and stdout and waits for its
// "ready" line.
func startCmd(c *exec.Cmd) (*proc, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	c.Stdin, c.Stdout, c.Stderr = inR, outW, os.Stderr
	err = c.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, err
	}
	p := &proc{cmd: c, in: inW, out: outR, rd: bufio.NewReader(outR), Pid: c.Process.Pid, done: make(chan struct{})}
	go func() { // owned by p: ends when the process is reaped, which stop waits for
		c.Wait()
		close(p.done)
	}()
	line, err := p.ask("")
	if err != nil || line != "ready" {
		p.stop()
		return nil, fmt.Errorf("%s: readiness line %q: %v", filepath.Base(c.Path), line, err)
	}
	return p, nil
}

// ask sends q (unless empty) and returns the next line.
func (p *proc) ask(q string) (string, error) {
	if q != "" {
		if _, err := p.in.WriteString(q + "\n"); err != nil {
			return "", err
		}
	}
	p.out.SetReadDeadline(time.Now().Add(30 * time.Second))
	line, err := p.rd.ReadString('\n')
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = errNoAnswer
		}
		return "", err
	}
	return strings.TrimSpace(line), nil
}

// gap asks the spinning program for its longest gap since the last question
// (src/spin.c answers "gap" with nanoseconds).
func (p *proc) gap() (time.Duration, error) {
	line, err := p.ask("gap")
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(line, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("gap answer %q: %w", line, err)
	}
	return time.Duration(n), nil
}

// stop kills the program and waits for it.
func (p *proc) stop() {
	p.cmd.Process.Kill()
	<-p.done
	p.in.Close()
	p.out.Close()
}
