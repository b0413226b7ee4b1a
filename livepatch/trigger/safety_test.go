package trigger

import (
	"math/rand/v2"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"ulp/livepatch/procfs"
	"ulp/livepatch/report"
	"ulp/livepatch/trigger/triggertest"
)

func TestRevertAll(t *testing.T) {
	fx := triggertest.Build(t)
	p := triggertest.Start(t, nil, fx.App)
	for _, n := range []string{"lp200", "misc", "lp300", "two"} {
		mustTrig(t, p.PID, apply(fx.LP[n]), report.Success)
	}
	p.Expect(t, map[string]string{"value": "300", "hidden": "60", "two": "22"})
	mustTrig(t, p.PID, Request{Action: report.RevertAll, Lib: "libcalc.so.1"}, report.Success)
	p.Expect(t, map[string]string{"value": "100", "hidden": "50", "counter": "42", "two": "22"})
	rep := mustTrig(t, p.PID, Request{Action: report.RevertAll, Lib: "libcalc.so.1"}, report.Skipped)
	if !strings.HasPrefix(rep.Reason, ReasonNoPatches) {
		t.Errorf("reason %q", rep.Reason)
	}
	rep = mustTrig(t, p.PID, Request{Action: report.RevertAll, Lib: "libnothere.so.1"}, report.Skipped)
	if rep.Reason != ReasonNotLoaded {
		t.Errorf("reason %q", rep.Reason)
	}
	// Everything reverted: the patches apply again.
	mustTrig(t, p.PID, apply(fx.LP["lp200"]), report.Success)
	p.Expect(t, map[string]string{"value": "200"})
}

func TestReplace(t *testing.T) {
	fx := triggertest.Build(t)
	broken := fx.Pack(t, "broken", "lp_broken.c", nil, fx.Calc, "calc_value:calc_value_lp")
	p := triggertest.Start(t, nil, fx.App)
	mustTrig(t, p.PID, apply(fx.LP["lp200"]), report.Success)
	mustTrig(t, p.PID, apply(fx.LP["misc"]), report.Success)

	// An invalid new patch: nothing is reverted.
	rep := mustTrig(t, p.PID, Request{Action: report.Replace, Lib: "libcalc.so.1", Container: broken}, report.Error)
	if !strings.Contains(rep.Reason, "ulp_test_missing_symbol") {
		t.Errorf("reason %q does not name the dlopen error", rep.Reason)
	}
	p.Expect(t, map[string]string{"value": "200", "hidden": "60"})
	if triggertest.Mapped(t, p.PID, broken) {
		t.Errorf("%s mapped after a failed load", broken)
	}

	// A valid one replaces both in one stop.
	mustTrig(t, p.PID, Request{Action: report.Replace, Lib: "libcalc.so.1", Container: fx.LP["lp300"]}, report.Success)
	p.Expect(t, map[string]string{"value": "300", "hidden": "50"})
	mustTrig(t, p.PID, revert(fx.LP["lp300"]), report.Success)
	p.Expect(t, map[string]string{"value": "100"})
	mustTrig(t, p.PID, revert(fx.LP["lp200"]), report.Skipped)
}

// buildIDReason is the SKIPPED reason of a build-id mismatch.
var buildIDReason = regexp.MustCompile(`^build-id mismatch \(library ([0-9a-f]{40}), patch ([0-9a-f]{40})\)$`)

// TestNeverMapped: a trigger that is SKIPPED or fails its checks leaves the
// container unmapped.
func TestNeverMapped(t *testing.T) {
	fx := triggertest.Build(t)
	// A libcalc.so.1 with different code, hence a different build-id.
	other := filepath.Join(t.TempDir(), "libcalc.so.1")
	triggertest.Compile(t, other, append([]string{"-shared", "-fPIC", "-Wl,-soname,libcalc.so.1", "-DBASE=101"},
		triggertest.Patchable...), "libcalc.c")
	mismatch := fx.Pack(t, "mismatch", "lp_value.c", []string{"-DVALUE=7"}, other, "calc_value:calc_value_lp")
	// A library the program does not load.
	absent := filepath.Join(t.TempDir(), "libabsent.so.1")
	triggertest.Compile(t, absent, append([]string{"-shared", "-fPIC", "-Wl,-soname,libabsent.so.1"},
		triggertest.Patchable...), "libtwo.c")
	notLoaded := fx.Pack(t, "notloaded", "lp_two.c", nil, absent, "two_value:two_value_lp")
	// Not a container: a livepatch that was never packed.
	unpacked := filepath.Join(fx.Dir, "unpacked.so")
	triggertest.Compile(t, unpacked, []string{"-shared", "-fPIC", "-DVALUE=5"}, "lp_value.c")

	p := triggertest.Start(t, nil, fx.App)
	mustTrig(t, p.PID, apply(fx.LP["lp200"]), report.Success)
	tests := []struct {
		name   string
		req    Request
		result report.Result
		reason string
	}{
		{"build-id mismatch", apply(mismatch), report.Skipped, ReasonBuildID},
		{"library not loaded", apply(notLoaded), report.Skipped, ReasonNotLoaded},
		{"invalid container", apply(unpacked), report.Error, "invalid container"},
		{"missing container", apply(filepath.Join(fx.Dir, "nothing.so")), report.Error, "invalid container"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := mustTrig(t, p.PID, tt.req, tt.result)
			if !strings.HasPrefix(rep.Reason, tt.reason) {
				t.Errorf("reason %q, want %q...", rep.Reason, tt.reason)
			}
			if m := buildIDReason.FindStringSubmatch(rep.Reason); tt.reason == ReasonBuildID && (m == nil || m[1] == m[2]) {
				t.Errorf("reason %q, want %q", rep.Reason, buildIDReason)
			}
			if triggertest.Mapped(t, p.PID, tt.req.Container) {
				t.Errorf("%s is mapped", tt.req.Container)
			}
			p.Untraced(t)
		})
	}
	// Earlier patches are intact.
	p.Expect(t, map[string]string{"value": "200"})
}

func TestNoRuntime(t *testing.T) {
	fx := triggertest.Build(t)
	p := triggertest.StartPlain(t, nil, fx.App)
	rep := mustTrig(t, p.PID, apply(fx.LP["lp200"]), report.Error)
	if !strings.Contains(rep.Reason, "libpulp.so.0 is not loaded") || !strings.Contains(rep.Reason, "LD_PRELOAD") {
		t.Errorf("reason %q", rep.Reason)
	}
	p.Untraced(t)
	p.Expect(t, map[string]string{"value": "100"})
}

func TestSetPatchable(t *testing.T) {
	fx := triggertest.Build(t)
	p := triggertest.Start(t, nil, fx.App)
	if _, err := SetPatchable(t.Context(), p.PID, false, Options{}); err != nil {
		t.Fatal(err)
	}
	rep := mustTrig(t, p.PID, apply(fx.LP["lp200"]), report.Skipped)
	if !strings.HasPrefix(rep.Reason, ReasonBlocked) {
		t.Errorf("reason %q", rep.Reason)
	}
	if triggertest.Mapped(t, p.PID, fx.LP["lp200"]) {
		t.Error("container mapped while blocked")
	}
	if _, err := SetPatchable(t.Context(), p.PID, true, Options{}); err != nil {
		t.Fatal(err)
	}
	mustTrig(t, p.PID, apply(fx.LP["lp200"]), report.Success)
	p.Expect(t, map[string]string{"value": "200"})
	p.Untraced(t)
}

func TestUserOptOut(t *testing.T) {
	fx := triggertest.Build(t)
	p := triggertest.Start(t, []string{"LIBPULP_DISABLE_ON_PATH=*/app"}, fx.App)
	rep := mustTrig(t, p.PID, apply(fx.LP["lp200"]), report.Skipped)
	if !strings.HasPrefix(rep.Reason, ReasonBlocked) {
		t.Errorf("reason %q", rep.Reason)
	}
	if _, err := SetPatchable(t.Context(), p.PID, true, Options{}); err == nil {
		t.Error("set_patchable enable overrode the user's opt-out")
	}
	p.Expect(t, map[string]string{"value": "100"})
}

// TestProcessExitsMidTrigger kills the target at random moments of a
// trigger: the result is SUCCESS (it finished first) or SKIPPED process
// exited, never ERROR.
func TestProcessExitsMidTrigger(t *testing.T) {
	fx := triggertest.Build(t)
	rng := rand.New(rand.NewPCG(3, 4))
	counts := map[string]int{}
	for range 30 {
		p := triggertest.Start(t, nil, fx.App)
		delay := time.Duration(rng.IntN(8000)) * time.Microsecond
		timer := time.AfterFunc(delay, func() { p.Cmd.Process.Kill() })
		rep := trig(t, p.PID, apply(fx.LP["lp200"]))
		timer.Stop()
		counts[string(rep.Result)+" "+rep.Reason]++
		if rep.Result == report.Error {
			t.Errorf("killed after %v: %s %s", delay, rep.Result, rep.Reason)
		}
		if rep.Result == report.Skipped && rep.Reason != ReasonExited {
			t.Errorf("killed after %v: %s %s", delay, rep.Result, rep.Reason)
		}
	}
	t.Logf("outcomes: %v", counts)
}

// TestConcurrentAgents runs triggers on one process from several agents at
// once: the seize is the lock, so they take turns and all succeed.
func TestConcurrentAgents(t *testing.T) {
	fx := triggertest.Build(t)
	p := triggertest.Start(t, nil, fx.App)
	names := []string{"lp200", "lp300", "lp400", "two", "main", "misc"}
	reps := make([]report.Process, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Go(func() { reps[i] = trig(t, p.PID, apply(fx.LP[n])) })
	}
	wg.Wait()
	for i, rep := range reps {
		if rep.Result != report.Success {
			t.Errorf("%s: %s %s", names[i], rep.Result, rep.Reason)
		}
	}
	p.Expect(t, map[string]string{"two": "22", "main": "11", "hidden": "60"})
	if v := p.Ask(t, "value"); v != "200" && v != "300" && v != "400" {
		t.Errorf("value = %s", v)
	}
	mustTrig(t, p.PID, Request{Action: report.RevertAll, Lib: "libcalc.so.1"}, report.Success)
	p.Expect(t, map[string]string{"value": "100", "hidden": "50"})
}

// TestMainThreadExited: a process whose main thread called pthread_exit
// has no memory view through its PID; the trigger says so (ERROR) instead
// of calling it exited, and leaves it running.
func TestMainThreadExited(t *testing.T) {
	fx := triggertest.Build(t)
	bin := filepath.Join(fx.Dir, "leaderexit")
	triggertest.Compile(t, bin, []string{"-O2", "-pthread", "-Wl,-rpath," + fx.Dir}, "leaderexit.c", fx.Calc)
	p := triggertest.Start(t, nil, bin)
	for deadline := time.Now().Add(10 * time.Second); !procfs.LeaderExited(p.PID); {
		if time.Now().After(deadline) {
			t.Fatal("the main thread did not exit")
		}
		time.Sleep(time.Millisecond)
	}
	rep := mustTrig(t, p.PID, apply(fx.LP["lp200"]), report.Error)
	if !strings.Contains(rep.Reason, "main thread") {
		t.Errorf("reason %q", rep.Reason)
	}
	p.Expect(t, map[string]string{"value": "100"})
}
