package trigger

import (
	"bufio"
	"context"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"ulp/internal/testenv"
	"ulp/livepatch/procfs"
	"ulp/livepatch/report"
	"ulp/livepatch/trigger/triggertest"
)

// boundedTrig runs one trigger with a short timeout and checks that it
// returns within that timeout and some slack.
func boundedTrig(t *testing.T, pid int, req Request, timeout time.Duration) report.Process {
	t.Helper()
	start := time.Now()
	rep := Run(t.Context(), pid, req, Options{Retries: 3, Timeout: timeout, Log: triggertest.Logger(t)})
	if took := time.Since(start); took > timeout+5*time.Second {
		t.Errorf("trigger took %v with --timeout %v", took, timeout)
	}
	t.Logf("%s %s: %s %s", req.Action, req.Container, rep.Result, rep.Reason)
	return rep
}

// waitState waits until process pid is in state (from /proc/PID/status)
// and traced by tracer (0: untraced).
func waitState(t *testing.T, pid int, ok func(*procfs.Status) bool) *procfs.Status {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := procfs.ReadStatus(pid)
		if err != nil {
			t.Fatal(err)
		}
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d: state %c, tracer %d", pid, st.State, st.TracerPid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFault_TargetStopped: a process stopped by SIGSTOP cannot run the
// load, so the trigger is an ERROR within --timeout; the process stays
// stopped (the agent does not resume it), untraced, with the old code, and
// takes the patch once continued.
func TestFault_TargetStopped(t *testing.T) {
	testenv.Require(t, testenv.Root, testenv.Ptrace, testenv.CC)
	fx := triggertest.Build(t)
	p := triggertest.Start(t, nil, fx.App)
	if err := syscall.Kill(p.PID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitState(t, p.PID, func(st *procfs.Status) bool { return st.State == 'T' })
	rep := boundedTrig(t, p.PID, apply(fx.LP["lp200"]), 2*time.Second)
	if rep.Result != report.Error || rep.Reason == "" || rep.Inconsistent {
		t.Errorf("stopped process: %s %q inconsistent=%v; want a clear ERROR", rep.Result, rep.Reason, rep.Inconsistent)
	}
	// Detached, the process goes back to its job-control stop: the kernel
	// wakes it to re-enter the stop, so it may read R for a moment. A
	// process the agent resumed would never read T again (waitState fails).
	waitState(t, p.PID, func(st *procfs.Status) bool { return st.TracerPid == 0 && st.State == 'T' })
	if err := syscall.Kill(p.PID, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	p.Expect(t, map[string]string{"value": "100"})
	mustTrig(t, p.PID, apply(fx.LP["lp200"]), report.Success)
	p.Expect(t, map[string]string{"value": "200"})
	p.Untraced(t)
}

// TestFault_TargetTracedByStrace: a process already traced by strace
// cannot be seized; the trigger is an ERROR within --timeout, strace keeps
// tracing it, and nothing changed.
func TestFault_TargetTracedByStrace(t *testing.T) {
	testenv.Require(t, testenv.Root, testenv.Ptrace, testenv.CC)
	fx := triggertest.Build(t)
	p := triggertest.Start(t, nil, fx.App)
	ctx, cancel := context.WithCancel(t.Context())
	strace := exec.CommandContext(ctx, "strace", "-f", "-o", "/dev/null", "-p", itoa(p.PID))
	if err := strace.Start(); err != nil {
		t.Fatal(err)
	}
	stopStrace := sync.OnceFunc(func() { cancel(); strace.Wait() })
	t.Cleanup(stopStrace)
	st := waitState(t, p.PID, func(st *procfs.Status) bool { return st.TracerPid != 0 })
	tracer := st.TracerPid
	p.Expect(t, map[string]string{"value": "100"})

	rep := boundedTrig(t, p.PID, apply(fx.LP["lp200"]), 2*time.Second)
	if rep.Result != report.Error || !strings.Contains(rep.Reason, "is traced by pid "+itoa(tracer)+", strace") {
		t.Errorf("traced process: %s %q; want an ERROR naming the tracer", rep.Result, rep.Reason)
	}
	if st, err := procfs.ReadStatus(p.PID); err != nil || st.TracerPid != tracer {
		t.Errorf("tracer after the trigger: %v %v, want %d", st, err, tracer)
	}
	if triggertest.Mapped(t, p.PID, fx.LP["lp200"]) {
		t.Error("container mapped")
	}
	p.Expect(t, map[string]string{"value": "100"})

	stopStrace()
	waitState(t, p.PID, func(st *procfs.Status) bool { return st.TracerPid == 0 })
	mustTrig(t, p.PID, apply(fx.LP["lp200"]), report.Success)
	p.Expect(t, map[string]string{"value": "200"})
	p.Untraced(t)
}

// TestFault_AgentKilledAtPhase kills the agent (build/ulp -v) with SIGKILL
// as soon as its debug log shows each phase of an apply (attach done; a
// thread stopped for the load; container loaded; threads stopped for the
// code write; detached) while two threads call the patched function in a
// loop. The process must
// keep running, untraced and not stopped, on the old or the new code, and
// its ledger must agree with the code: a later apply or revert finishes the
// job.
func TestFault_AgentKilledAtPhase(t *testing.T) {
	ulp := testenv.Artifact(t, "ulp")
	testenv.Require(t, testenv.Root, testenv.Ptrace, testenv.CC)
	fx := triggertest.Build(t)
	p := triggertest.Start(t, nil, fx.Spin(t), "2")
	phases := []struct {
		name string
		logs []string // log messages, in order; the kill follows the last
	}{
		{"attach", []string{"msg=seized"}},
		{"load", []string{"msg=seized", `msg="thread stopped"`}},
		{"loaded", []string{"msg=loaded"}},
		{"write", []string{"msg=loaded", `msg="thread stopped"`}},
		{"detach", []string{"msg=detached"}},
	}
	for _, ph := range phases {
		t.Run(ph.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, ulp, "-v", "trigger", "-p", itoa(p.PID), fx.LP["lp200"])
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(stderr)
			next := 0
			for next < len(ph.logs) && sc.Scan() {
				if strings.Contains(sc.Text(), ph.logs[next]) {
					next++
				}
			}
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			if next < len(ph.logs) {
				t.Fatalf("the agent never logged %s", ph.logs[next])
			}
			waitState(t, p.PID, func(st *procfs.Status) bool { return st.TracerPid == 0 })
			p.Untraced(t)
			v := p.Ask(t, "value")
			if v != "100" && v != "200" {
				t.Fatalf("killed at %s: calc_value = %q", ph.name, v)
			}
			// The ledger agrees with the code: applying again either
			// finishes the job or says it is already done.
			rep := trig(t, p.PID, apply(fx.LP["lp200"]))
			switch {
			case v == "200" && rep.Result == report.Skipped && rep.Reason == ReasonApplied:
			case v == "100" && rep.Result == report.Success:
			default:
				t.Fatalf("killed at %s with value %s: then apply gave %s %q", ph.name, v, rep.Result, rep.Reason)
			}
			p.Expect(t, map[string]string{"value": "200"})
			mustTrig(t, p.PID, revert(fx.LP["lp200"]), report.Success)
			p.Expect(t, map[string]string{"value": "100"})
		})
	}
	p.Untraced(t)
}

// TestFault_TwoAgentProcesses runs two agents (build/ulp) on one process
// at once, each with its own patch: they take turns (the seize is the lock)
// and both patches end up applied.
func TestFault_TwoAgentProcesses(t *testing.T) {
	ulp := testenv.Artifact(t, "ulp")
	testenv.Require(t, testenv.Root, testenv.Ptrace, testenv.CC)
	fx := triggertest.Build(t)
	p := triggertest.Start(t, nil, fx.App)
	for round := range 5 {
		var wg sync.WaitGroup
		outs := make([]string, 2)
		errs := make([]error, 2)
		for i, lp := range []string{fx.LP["lp200"], fx.LP["two"]} {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
				defer cancel()
				b, err := exec.CommandContext(ctx, ulp, "trigger", "-p", itoa(p.PID), lp).CombinedOutput()
				outs[i], errs[i] = string(b), err
			})
		}
		wg.Wait()
		for i := range outs {
			if errs[i] != nil || outs[i] != "SUCCESS\n" {
				t.Fatalf("round %d agent %d: %v %q", round, i, errs[i], outs[i])
			}
		}
		p.Expect(t, map[string]string{"value": "200", "two": "22"})
		mustTrig(t, p.PID, Request{Action: report.RevertAll, Lib: "libcalc.so.1"}, report.Success)
		mustTrig(t, p.PID, Request{Action: report.RevertAll, Lib: "libtwo.so.1"}, report.Success)
		p.Expect(t, map[string]string{"value": "100", "two": "2"})
	}
	p.Untraced(t)
}
