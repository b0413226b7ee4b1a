package trigger

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ulp/internal/testenv"
	"ulp/livepatch/report"
	"ulp/livepatch/trigger/triggertest"
)

// TestCheckStack: while a thread waits inside sleep() of the system's libc
// (its stack holds a return address into sleep), an apply replacing sleep
// with CheckStack waits: it fails at its timeout naming the thread and
// sleep, and succeeds once the thread has returned; without CheckStack the
// apply does not wait. The revert of a replacement a thread is inside
// waits the same way.
func TestCheckStack(t *testing.T) {
	testenv.Require(t, testenv.CC)
	fx := &triggertest.Fixture{Dir: t.TempDir(), LP: map[string]string{}}
	src := func(name string) string {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(fx.Dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bin := filepath.Join(fx.Dir, "sleeper")
	testenv.CompileC(t, bin, []string{"-O2", "-pthread"}, src("sleeper.c"))
	so := filepath.Join(fx.Dir, "lp_sleep.so")
	testenv.CompileC(t, so, []string{"-shared", "-fPIC", "-O2", "-Wl,--build-id"}, src("lp_sleep.c"))
	lp := fx.PackFile(t, so, distroLibc, "sleep:sleep_lp")

	p := triggertest.Start(t, nil, bin)
	run := func(req Request, timeout time.Duration) report.Process {
		t.Helper()
		return Run(t.Context(), p.PID, req, Options{Retries: 100, Timeout: timeout, CheckStack: true})
	}
	// A hold thread sleeps holdSecs: longer than a refused trigger
	// (refuseAfter) can take, even on a loaded machine, so that it is
	// still inside sleep when the trigger gives up.
	const holdSecs, refuseAfter, waitFor = 8, 2 * time.Second, 60 * time.Second
	hold := fmt.Sprintf("hold %d", holdSecs)
	if got := p.Ask(t, hold); got != "ok" {
		t.Fatalf("hold: %q", got)
	}
	rep := run(apply(lp), refuseAfter)
	if rep.Result != report.Error || !strings.Contains(rep.Reason, "--check-stack: thread ") ||
		!strings.Contains(rep.Reason, "holds a return address") || !strings.Contains(rep.Reason, "inside sleep") {
		t.Fatalf("apply while a thread sleeps: %s %q", rep.Result, rep.Reason)
	}
	if got := p.Ask(t, "call"); got != "0" {
		t.Fatalf("sleep(0) after the refused apply = %s", got)
	}
	rep = run(apply(lp), waitFor)
	if rep.Result != report.Success {
		t.Fatalf("apply after the wait: %s %q", rep.Result, rep.Reason)
	}
	if got := p.Ask(t, "done"); got != "1" {
		t.Errorf("the apply succeeded with %s hold threads returned, want 1", got)
	}
	if got := p.Ask(t, "call"); got != "77" {
		t.Fatalf("sleep(0) patched = %s", got)
	}

	// A thread sleeping inside the replacement holds the revert.
	if got := p.Ask(t, hold); got != "ok" {
		t.Fatalf("hold: %q", got)
	}
	rep = run(revert(lp), refuseAfter)
	if rep.Result != report.Error || !strings.Contains(rep.Reason, "inside sleep_lp") {
		t.Fatalf("revert while a thread sleeps in the replacement: %s %q", rep.Result, rep.Reason)
	}
	if rep = run(revert(lp), waitFor); rep.Result != report.Success {
		t.Fatalf("revert after the wait: %s %q", rep.Result, rep.Reason)
	}
	if got := p.Ask(t, "done"); got != "2" {
		t.Errorf("the revert succeeded with %s hold threads returned, want 2", got)
	}

	// Without CheckStack nothing waits: the thread sleeps for longer than
	// the test runs.
	if got := p.Ask(t, "hold 3600"); got != "ok" {
		t.Fatalf("hold: %q", got)
	}
	mustTrig(t, p.PID, apply(lp), report.Success)
	if got := p.Ask(t, "done"); got != "2" {
		t.Errorf("without CheckStack: %s hold threads returned, want 2 (one still sleeping)", got)
	}
	mustTrig(t, p.PID, revert(lp), report.Success)
	p.Untraced(t)
}
