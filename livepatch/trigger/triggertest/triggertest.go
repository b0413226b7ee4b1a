package triggertest

import (
	"bufio"
	"embed"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ulp/internal/testenv"
	"ulp/livepatch/dsc"
	"ulp/livepatch/packer"
	"ulp/livepatch/procfs"
)

//go:embed testdata
var sources embed.FS

// Fixture is the set of programs, libraries and containers.
type Fixture struct {
	Dir  string
	Calc string // libcalc.so.1
	Two  string // libtwo.so.1
	App  string // the program, linked with both libraries
	// LP maps a livepatch name to its container: lp200, lp300, lp400
	// (calc_value returns that number), misc (a static function, 20
	// arguments, a data and a TLS reference, a prologue across a page
	// boundary), two (libtwo), main (the executable's main_value).
	LP map[string]string
}

// Source writes the fixture source name into dir/src and returns its path.
func Source(t testing.TB, dir, name string) string {
	t.Helper()
	b, err := sources.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(src, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Compile compiles the fixture source src (and extra files) into out.
func Compile(t testing.TB, out string, args []string, src string, extra ...string) {
	t.Helper()
	testenv.CompileC(t, out, args, append([]string{Source(t, filepath.Dir(out), src)}, extra...)...)
}

// CompileCXX compiles the C++ fixture source src (and extra files) into out
// with c++.
func CompileCXX(t testing.TB, out string, args []string, src string, extra ...string) {
	t.Helper()
	testenv.Require(t, testenv.CC)
	cmdArgs := append(append([]string{"-o", out}, args...), append([]string{Source(t, filepath.Dir(out), src)}, extra...)...)
	if b, err := exec.Command("c++", cmdArgs...).CombinedOutput(); err != nil {
		t.Fatalf("c++ %s: %v\n%s", strings.Join(cmdArgs, " "), err, b)
	}
}

// Patchable are the cc flags of patchable objects.
var Patchable = []string{"-O2", "-g", "-fpatchable-function-entry=16,14", "-Wl,--build-id"}

// Build compiles the fixture with extra cflags for the patchable objects
// (e.g. -fcf-protection=full) into a fresh folder.
func Build(t testing.TB, cflags ...string) *Fixture {
	t.Helper()
	testenv.Require(t, testenv.CC)
	dir := t.TempDir()
	fx := &Fixture{
		Dir:  dir,
		Calc: filepath.Join(dir, "libcalc.so.1"),
		Two:  filepath.Join(dir, "libtwo.so.1"),
		App:  filepath.Join(dir, "app"),
		LP:   map[string]string{},
	}
	patchable := append(append([]string{}, Patchable...), cflags...)
	lib := func(out, soname, src string, extra ...string) {
		args := append(append([]string{"-shared", "-fPIC", "-Wl,-soname," + soname}, patchable...), extra...)
		Compile(t, out, args, src)
	}
	lib(fx.Calc, "libcalc.so.1", "libcalc.c", "-Wl,-Bsymbolic", "-falign-functions=1")
	lib(fx.Two, "libtwo.so.1", "libtwo.c")
	Compile(t, fx.App, append([]string{"-fPIE", "-pie", "-Wl,-rpath," + dir}, patchable...), "app.c", fx.Calc, fx.Two)
	for _, v := range []int{200, 300, 400} {
		fx.Pack(t, fmt.Sprintf("lp%d", v), "lp_value.c", []string{fmt.Sprintf("-DVALUE=%d", v)}, fx.Calc,
			"calc_value:calc_value_lp")
	}
	fx.Pack(t, "misc", "lp_misc.c", nil, fx.Calc,
		"hidden:hidden_lp", "calc_args:calc_args_lp", "calc_counter:calc_counter_lp", "calc_tls:calc_tls_lp",
		"calc_page:calc_page_lp", "#counter:counter_ref", "#%tlsvar:tlsvar_idx")
	fx.Pack(t, "two", "lp_two.c", nil, fx.Two, "two_value:two_value_lp")
	fx.Pack(t, "main", "lp_main.c", nil, fx.App, "main_value:main_value_lp")
	return fx
}

// Pack compiles livepatch name from the fixture source src and packs it
// for target with the description lines; it returns the container path.
func (fx *Fixture) Pack(t testing.TB, name, src string, cflags []string, target string, lines ...string) string {
	t.Helper()
	so := filepath.Join(fx.Dir, name+".so")
	Compile(t, so, append([]string{"-shared", "-fPIC", "-O2", "-Wl,--build-id"}, cflags...), src)
	fx.LP[name] = fx.PackFile(t, so, target, lines...)
	return so
}

// PackFile packs the built livepatch so (in place) for target with the
// description lines and returns its path.
func (fx *Fixture) PackFile(t testing.TB, so, target string, lines ...string) string {
	t.Helper()
	name := strings.TrimSuffix(filepath.Base(so), ".so")
	body := fmt.Sprintf("! livepatch %s for CVE-2099-0001\n%s\n@%s\n%s\n", name, so, target, strings.Join(lines, "\n"))
	dscPath := filepath.Join(fx.Dir, name+".dsc")
	if err := os.WriteFile(dscPath, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := dsc.Parse(dscPath, []byte(body))
	if err != nil {
		t.Fatalf("dsc %s: %v", name, err)
	}
	if _, err := packer.Pack(d, packer.Options{Out: so}); err != nil {
		t.Fatalf("pack %s: %v", name, err)
	}
	return so
}

// Spin compiles the spinning program (testdata/spin.c) linked with the
// fixture's libcalc and returns its path. Its threads call calc_value in a
// tight loop and record the largest gap between two clock readings.
func (fx *Fixture) Spin(t testing.TB) string {
	t.Helper()
	out := filepath.Join(fx.Dir, "spin")
	Compile(t, out, []string{"-O2", "-pthread", "-Wl,-rpath," + fx.Dir}, "spin.c", fx.Calc)
	return out
}

// answerTimeout bounds the wait for one line of a Proc: generous, for a
// machine under load (a line comes as soon as the program has answered).
const answerTimeout = 60 * time.Second

// Proc is a running test program.
type Proc struct {
	Cmd *exec.Cmd
	PID int
	in  io.WriteCloser
	out *bufio.Reader
}

// Start runs bin with the runtime preloaded (plus env) and waits for its
// first line, which must start with "ready". The process is killed and
// reaped when t ends.
func Start(t testing.TB, env []string, bin string, args ...string) *Proc {
	t.Helper()
	testenv.Require(t, testenv.Ptrace)
	rt := testenv.Artifact(t, "libpulp.so.0")
	return StartPlain(t, append([]string{"LD_PRELOAD=" + rt}, env...), bin, args...)
}

// StartPlain is Start without the runtime: env is all it adds.
func StartPlain(t testing.TB, env []string, bin string, args ...string) *Proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	p := &Proc{Cmd: cmd, PID: cmd.Process.Pid, in: in, out: bufio.NewReader(out)}
	if line := p.Line(t); !strings.HasPrefix(line, "ready") {
		t.Fatalf("readiness line %q", line)
	}
	return p
}

// Line reads one line of output, failing t after answerTimeout.
func (p *Proc) Line(t testing.TB) string {
	t.Helper()
	type res struct {
		s   string
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := p.out.ReadString('\n')
		ch <- res{strings.TrimSpace(s), err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("pid %d: read: %v", p.PID, r.err)
		}
		return r.s
	case <-time.After(answerTimeout):
		t.Fatalf("pid %d: no answer in %v", p.PID, answerTimeout)
	}
	return ""
}

// Ask sends one line and returns the answer.
func (p *Proc) Ask(t testing.TB, q string) string {
	t.Helper()
	if _, err := fmt.Fprintln(p.in, q); err != nil {
		t.Fatal(err)
	}
	return p.Line(t)
}

// Expect asks each query and compares the answers.
func (p *Proc) Expect(t testing.TB, want map[string]string) {
	t.Helper()
	for q, w := range want {
		if got := p.Ask(t, q); got != w {
			t.Errorf("pid %d: %s = %s, want %s", p.PID, q, got, w)
		}
	}
}

// Untraced fails t if any thread of p has a tracer or is stopped.
func (p *Proc) Untraced(t testing.TB) {
	t.Helper()
	tids, err := procfs.Tasks(p.PID)
	if err != nil {
		t.Fatal(err)
	}
	for _, tid := range tids {
		st, err := procfs.ReadStatus(tid)
		if err != nil {
			continue
		}
		if st.TracerPid != 0 {
			t.Fatalf("thread %d of pid %d traced by %d", tid, p.PID, st.TracerPid)
		}
		if st.State == 't' || st.State == 'T' {
			t.Fatalf("thread %d of pid %d stopped (%c)", tid, p.PID, st.State)
		}
	}
}

// Mapped reports whether process pid maps the file path.
func Mapped(t testing.TB, pid int, path string) bool {
	t.Helper()
	maps, err := procfs.Maps(pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range maps {
		if m.Path == path {
			return true
		}
	}
	return false
}

// Logger returns a debug logger writing to the test's output.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}
