package cli

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ulp/livepatch/report"
	"ulp/livepatch/trigger/triggertest"
)

// hostNames links the fixture's app under a name unique among concurrent
// tests (the process name -p matches) and compiles a program with the
// runtime that does not use the target library under a sibling name.
func hostNames(t *testing.T, fx *triggertest.Fixture) (prefix, app, other string) {
	t.Helper()
	prefix = fmt.Sprintf("h%d", os.Getpid()%1000000)
	app = filepath.Join(fx.Dir, prefix+"a")
	if err := os.Link(fx.App, app); err != nil {
		t.Fatal(err)
	}
	other = filepath.Join(fx.Dir, prefix+"b")
	triggertest.Compile(t, other, []string{"-O2"}, "ping.c")
	return prefix, app, other
}

// decodeTrigger splits `ulp trigger --json` output into its records.
func decodeTrigger(t *testing.T, stdout string) ([]report.Process, report.Summary) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	var recs []report.Process
	var sum report.Summary
	for i, l := range lines {
		if i == len(lines)-1 {
			if err := json.Unmarshal([]byte(l), &sum); err != nil || sum.Type != report.TypeSummary {
				t.Fatalf("last line %q: %v", l, err)
			}
			break
		}
		var r report.Process
		if err := json.Unmarshal([]byte(l), &r); err != nil || r.Type != report.TypeProcess {
			t.Fatalf("line %q: %v", l, err)
		}
		recs = append(recs, r)
	}
	return recs, sum
}

// TestTriggerCommand_WholeHost: three processes using libcalc and two
// with the runtime but without it; a container glob applies three
// containers to each, the summary counts processes, and --revert-all=LIB
// alone restores all three.
func TestTriggerCommand_WholeHost(t *testing.T) {
	fx := triggertest.Build(t)
	prefix, app, other := hostNames(t, fx)
	var users []*triggertest.Proc
	for range 3 {
		users = append(users, triggertest.Start(t, nil, app))
	}
	for range 2 {
		triggertest.Start(t, nil, other)
	}
	glob := filepath.Join(fx.Dir, "lp[234]00.so")

	stdout, stderr, code := inspectRun(t, "trigger", "-p", prefix+"*", glob)
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, stderr, stdout)
	}
	if !strings.HasSuffix(stdout, "\nProcesses patched: 3, Skipped: 2, Failed: 0.\n") {
		t.Errorf("stdout %q", stdout)
	}
	if n := strings.Count(stdout, "lp200.so: SUCCESS"); n != 3 {
		t.Errorf("%d lp200 SUCCESS lines in %q", n, stdout)
	}
	if n := strings.Count(stdout, "SKIPPED target library not loaded"); n != 6 {
		t.Errorf("%d not-loaded lines (2 processes × 3 containers) in %q", n, stdout)
	}
	for _, p := range users {
		p.Expect(t, map[string]string{"value": "400"}) // the newest wins
		p.Untraced(t)
	}

	stdout, stderr, code = inspectRun(t, "trigger", "--json", "-p", prefix+"*", "--revert-all=libcalc.so.1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	recs, sum := decodeTrigger(t, stdout)
	want := report.Summary{Schema: report.TriggerSchema, Type: report.TypeSummary, Candidates: 5, Patched: 3, Skipped: 2}
	if sum != want || len(recs) != 5 {
		t.Errorf("summary %+v (want %+v), %d records", sum, want, len(recs))
	}
	for _, r := range recs {
		if r.Result == report.Success && r.Timings.PauseUS <= 0 {
			t.Errorf("record without a pause: %+v", r)
		}
	}
	for _, p := range users {
		p.Expect(t, map[string]string{"value": "100"})
		p.Untraced(t)
	}

	// A package update: --revert-all=LIB with the package's containers
	// replaces by the first for LIB (nothing to revert now) and applies the
	// others.
	stdout, stderr, code = inspectRun(t, "trigger", "--json", "-p", prefix+"*", "--revert-all=libcalc.so.1", filepath.Join(fx.Dir, "lp[23]00.so"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	recs, sum = decodeTrigger(t, stdout)
	var actions []string
	for _, r := range recs {
		if r.PID == users[0].PID {
			actions = append(actions, string(r.Action)+" "+filepath.Base(r.Patch)+" "+string(r.Result))
		}
	}
	if want := "replace lp200.so SUCCESS, apply lp300.so SUCCESS"; strings.Join(actions, ", ") != want || sum.Patched != 3 || sum.PatchesApplied != 6 {
		t.Errorf("actions %q (want %q), summary %+v", actions, want, sum)
	}
	for _, p := range users {
		p.Expect(t, map[string]string{"value": "300"})
	}
}

// TestTriggerCommand_AllProcesses: without -p every process with the
// runtime is a candidate (other tests' processes on this host included:
// their libcalc has another build-id, so only ours are patched).
func TestTriggerCommand_AllProcesses(t *testing.T) {
	fx := triggertest.Build(t)
	_, app, other := hostNames(t, fx)
	var users []*triggertest.Proc
	for range 3 {
		users = append(users, triggertest.Start(t, nil, app))
	}
	unrelated := triggertest.Start(t, nil, other)
	stdout, stderr, _ := inspectRun(t, "trigger", "--json", fx.LP["lp200"])
	recs, sum := decodeTrigger(t, stdout)
	if sum.Patched != 3 || sum.PatchesApplied != 3 || sum.Candidates < 4 || sum.Candidates != len(recs) {
		t.Errorf("summary %+v, %d records (stderr %s)", sum, len(recs), stderr)
	}
	byPID := map[int]report.Process{}
	for _, r := range recs {
		byPID[r.PID] = r
	}
	for _, p := range users {
		if r := byPID[p.PID]; r.Result != report.Success {
			t.Errorf("pid %d: %+v", p.PID, r)
		}
		p.Expect(t, map[string]string{"value": "200"})
	}
	if r := byPID[unrelated.PID]; r.Result != report.Skipped || r.Reason != "target library not loaded" {
		t.Errorf("unrelated pid %d: %+v", unrelated.PID, r)
	}
	if _, ok := byPID[os.Getpid()]; ok {
		t.Error("the agent's own process was a candidate")
	}
}

// TestTriggerCommand_ExitingProcesses: processes killed at random moments
// of a mass trigger are SUCCESS or SKIPPED "process exited", never an
// ERROR; the survivors run the new code, untraced and not stopped.
func TestTriggerCommand_ExitingProcesses(t *testing.T) {
	fx := triggertest.Build(t)
	prefix, app, _ := hostNames(t, fx)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	killed := map[int]bool{} // every round's: a zombie may still be listed
	for round := range 3 {
		var procs []*triggertest.Proc
		for range 16 {
			procs = append(procs, triggertest.Start(t, nil, app))
		}
		var timers []*time.Timer
		for _, p := range procs {
			if rng.IntN(2) == 0 {
				continue
			}
			killed[p.PID] = true
			timers = append(timers, time.AfterFunc(time.Duration(rng.IntN(60000))*time.Microsecond, func() { p.Cmd.Process.Kill() }))
		}
		stdout, stderr, code := inspectRun(t, "trigger", "--json", "--jobs=4", "-p", prefix+"*", fx.LP["lp200"])
		for _, tm := range timers {
			tm.Stop()
		}
		if code != 0 {
			t.Errorf("round %d: exit %d: %s", round, code, stderr)
		}
		recs, sum := decodeTrigger(t, stdout)
		if sum.Candidates != len(recs) || sum.Failed != 0 || sum.Patched+sum.Skipped != sum.Candidates {
			t.Errorf("round %d: summary %+v", round, sum)
		}
		for _, r := range recs {
			switch {
			case r.Result == report.Success:
			case r.Result == report.Skipped && r.Reason == "process exited" && killed[r.PID]:
			default:
				t.Errorf("round %d: pid %d (killed %v): %s %s", round, r.PID, killed[r.PID], r.Result, r.Reason)
			}
		}
		for _, p := range procs {
			if !killed[p.PID] {
				p.Untraced(t)
				p.Expect(t, map[string]string{"value": "200"})
			}
			killed[p.PID] = true // out of the next round
			p.Cmd.Process.Kill()
		}
	}
}

// TestTriggerCommand_Activate: --activate puts the container in the
// patch-on-start folder as the running processes get it, so a process
// started afterwards runs the new code from its first call; --revert-all
// with --activate takes it out of both.
func TestTriggerCommand_Activate(t *testing.T) {
	fx := triggertest.Build(t)
	prefix, app, _ := hostNames(t, fx)
	dir := filepath.Join(t.TempDir(), "active")
	env := []string{"LIBPULP_ACTIVE_DIR=" + dir}
	running := triggertest.Start(t, env, app) // no folder yet: nothing applied at start
	running.Expect(t, map[string]string{"value": "100"})

	stdout, stderr, code := inspectRun(t, "trigger", "--activate", "--active-dir", dir, "-p", prefix+"*", fx.LP["lp200"])
	if code != 0 || !strings.HasPrefix(stdout, "activated "+filepath.Join(dir, "lp200.so")+"\n") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	running.Expect(t, map[string]string{"value": "200"})
	later := triggertest.Start(t, env, app)
	later.Expect(t, map[string]string{"value": "200"})

	// A later trigger finds the patch already there in both.
	stdout, _, _ = inspectRun(t, "trigger", "-p", prefix+"*", fx.LP["lp200"])
	if n := strings.Count(stdout, "SKIPPED already applied"); n != 2 {
		t.Errorf("stdout %q", stdout)
	}

	stdout, stderr, code = inspectRun(t, "trigger", "--activate", "--active-dir", dir, "-p", prefix+"*", "--revert-all=libcalc.so.1")
	if code != 0 || !strings.HasPrefix(stdout, "deactivated "+filepath.Join(dir, "lp200.so")+"\n") ||
		!strings.HasSuffix(stdout, "Processes reverted: 2, Skipped: 0, Failed: 0.\n") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	for _, p := range []*triggertest.Proc{running, later, triggertest.Start(t, env, app)} {
		p.Expect(t, map[string]string{"value": "100"})
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
		t.Errorf("folder after revert-all: %v, %v", ents, err)
	}
}
