package trigger

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ulp/internal/testenv"
	"ulp/livepatch/dsc"
	"ulp/livepatch/packer"
	"ulp/livepatch/procfs"
	"ulp/livepatch/report"
)

// fixture is the set of programs, libraries and containers of the e2e
// tests, compiled with cc at test time.
type fixture struct {
	dir  string
	calc string // libcalc.so.1
	two  string // libtwo.so.1
	app  string // the program
	lp   map[string]string
}

// buildFixture compiles the fixture with extra cflags for the patchable
// objects (e.g. -fcf-protection=full) into a fresh folder.
func buildFixture(t *testing.T, cflags ...string) *fixture {
	t.Helper()
	testenv.Require(t, testenv.CC)
	dir := t.TempDir()
	fx := &fixture{
		dir:  dir,
		calc: filepath.Join(dir, "libcalc.so.1"),
		two:  filepath.Join(dir, "libtwo.so.1"),
		app:  filepath.Join(dir, "app"),
		lp:   map[string]string{},
	}
	patchable := append([]string{"-O2", "-g", "-fpatchable-function-entry=16,14", "-Wl,--build-id"}, cflags...)
	lib := func(out, soname string, extra ...string) {
		args := append(append([]string{"-shared", "-fPIC", "-Wl,-soname," + soname}, patchable...), extra...)
		compileSrc(t, out, args, soname[:strings.Index(soname, ".so")]+".c")
	}
	lib(fx.calc, "libcalc.so.1", "-Wl,-Bsymbolic")
	lib(fx.two, "libtwo.so.1")
	testenv.CompileC(t, fx.app, append([]string{"-fPIE", "-pie", "-Wl,-rpath," + dir}, patchable...),
		filepath.Join(testenv.ModuleRoot(), "livepatch", "trigger", "testdata", "app.c"), fx.calc, fx.two)
	for _, v := range []int{200, 300, 400} {
		name := fmt.Sprintf("lp%d", v)
		fx.pack(t, name, "lp_value.c", []string{fmt.Sprintf("-DVALUE=%d", v)}, fx.calc, "calc_value:calc_value_lp")
	}
	fx.pack(t, "misc", "lp_misc.c", nil, fx.calc,
		"hidden:hidden_lp", "calc_args:calc_args_lp", "calc_counter:calc_counter_lp", "calc_tls:calc_tls_lp",
		"#counter:counter_ref", "#%tlsvar:tlsvar_idx")
	fx.pack(t, "two", "lp_two.c", nil, fx.two, "two_value:two_value_lp")
	fx.pack(t, "main", "lp_main.c", nil, fx.app, "main_value:main_value_lp")
	return fx
}

func compileSrc(t *testing.T, out string, args []string, src string) {
	t.Helper()
	testenv.CompileC(t, out, args, filepath.Join(testenv.ModuleRoot(), "livepatch", "trigger", "testdata", src))
}

// pack builds livepatch name from src and packs it for target with the
// description lines.
func (fx *fixture) pack(t *testing.T, name, src string, cflags []string, target string, lines ...string) string {
	t.Helper()
	so := filepath.Join(fx.dir, name+".so")
	compileSrc(t, so, append([]string{"-shared", "-fPIC", "-O2", "-Wl,--build-id"}, cflags...), src)
	body := fmt.Sprintf("! livepatch %s for CVE-2099-0001\n%s\n@%s\n%s\n", name, so, target, strings.Join(lines, "\n"))
	dscPath := filepath.Join(fx.dir, name+".dsc")
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
	fx.lp[name] = so
	return so
}

// startApp starts the fixture program with the runtime preloaded.
func (fx *fixture) startApp(t *testing.T, env ...string) *proc {
	t.Helper()
	return start(t, env, fx.app)
}

// expect asks p each query and compares the answers.
func expect(t *testing.T, p *proc, want map[string]string) {
	t.Helper()
	for q, w := range want {
		if got := p.ask(t, q); got != w {
			t.Errorf("%s = %s, want %s", q, got, w)
		}
	}
}

// trig runs one trigger in-process with a 30 s budget.
func trig(t *testing.T, pid int, req Request) report.Process {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	rep := Run(ctx, pid, req, Options{Retries: 100, Log: testLogger(t)})
	t.Logf("%s %s: %s %s (pause %d µs, total %d µs)", req.Action, filepath.Base(req.Container), rep.Result, rep.Reason,
		rep.Timings.PauseUS, rep.Timings.TotalUS)
	return rep
}

// mustTrig runs a trigger that must report want.
func mustTrig(t *testing.T, pid int, req Request, want report.Result) report.Process {
	t.Helper()
	rep := trig(t, pid, req)
	if rep.Result != want {
		t.Fatalf("%s %s: %s %q, want %s", req.Action, req.Container, rep.Result, rep.Reason, want)
	}
	return rep
}

func apply(path string) Request  { return Request{Action: ActApply, Container: path} }
func revert(path string) Request { return Request{Action: ActRevert, Container: path} }

// mapped reports whether process pid maps file path.
func mapped(t *testing.T, pid int, path string) bool {
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
