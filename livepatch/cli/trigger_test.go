package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"ulp/livepatch/report"
	"ulp/livepatch/trigger/triggertest"
)

func TestTriggerCommand(t *testing.T) {
	fx := triggertest.Build(t)
	p := triggertest.Start(t, nil, fx.App)
	pid := strconv.Itoa(p.PID)
	lp200, lp300 := fx.LP["lp200"], fx.LP["lp300"]
	unpacked := filepath.Join(fx.Dir, "unpacked.so")
	triggertest.Compile(t, unpacked, []string{"-shared", "-fPIC", "-DVALUE=5"}, "lp_value.c")
	plain := triggertest.StartPlain(t, nil, fx.App)

	tests := []struct {
		name     string
		args     []string
		stdout   string // exact, or prefix when it ends in "..."
		code     int
		value    string // calc_value afterwards
		stderrIn string
	}{
		{"apply", []string{"trigger", "-p", pid, lp200}, "SUCCESS\n", 0, "200", ""},
		{"apply again", []string{"trigger", "-p", pid, lp200}, "SKIPPED already applied\n", 0, "200", ""},
		{"quiet", []string{"trigger", "-q", "-p", pid, lp300}, "", 0, "300", ""},
		{"verbose", []string{"trigger", "-v", "-p", pid, "--revert", lp300}, "SUCCESS\n  timings: total...", 0, "200", ""},
		{"revert not applied", []string{"trigger", "-p", pid, "--revert", lp300}, "SKIPPED not applied\n", 0, "200", ""},
		{"replace", []string{"trigger", "-p", pid, "--revert-all=libcalc.so.1", lp300}, "SUCCESS\n", 0, "300", ""},
		{"revert-all", []string{"trigger", "-p", pid, "--revert-all=libcalc.so.1"}, "SUCCESS\n", 0, "100", ""},
		{"revert-all none", []string{"trigger", "-p", pid, "--revert-all=libcalc.so.1"}, "SKIPPED no patches on libcalc.so.1\n", 0, "100", ""},
		{"apply before target", []string{"trigger", "-p", pid, lp200}, "SUCCESS\n", 0, "200", ""},
		{"replace by target", []string{"trigger", "-p", pid, "--revert-all=target", lp300}, "SUCCESS\n", 0, "300", ""},
		{"target without container", []string{"trigger", "-p", pid, "--revert-all=target"}, "", 2, "300", "--revert-all=target needs LIVEPATCH.so"},
		{"revert the replacement", []string{"trigger", "-p", pid, "--revert", lp300}, "SUCCESS\n", 0, "100", ""}, // lp200 went with the replace
		{"relative root prefix", []string{"trigger", "-p", pid, "-R", "snap", lp200}, "", 2, "100", "--root snap: not an absolute path"},
		{"no container matches", []string{"trigger", "-p", pid, filepath.Join(fx.Dir, "none*.so")}, "", 2, "100", "no container matches"},
		{"bad jobs", []string{"trigger", "-p", pid, "--jobs=-1", lp200}, "", 2, "100", "--jobs"},
		{"no container", []string{"trigger", "-p", pid}, "", 2, "100", "needs LIVEPATCH.so"},
		{"revert without container", []string{"trigger", "-p", pid, "--revert"}, "", 2, "100", "--revert needs"},
		{"revert and revert-all", []string{"trigger", "-p", pid, "--revert", "--revert-all=x", lp200}, "", 2, "100", "mutually exclusive"},
		{"invalid container", []string{"trigger", "-p", pid, unpacked}, "", 2, "100", "invalid container"},
		{"replace other library", []string{"trigger", "-p", pid, "--revert-all=libtwo.so.1", lp200}, "", 2, "100", `patches "libcalc.so.1", not libtwo.so.1`},
		{"two containers", []string{"trigger", "-p", pid, lp200, lp300}, "", 2, "100", "at most 1"},
		{"bad retries", []string{"trigger", "-p", pid, "--retries=-1", lp200}, "", 2, "100", "--retries"},
		{"no runtime", []string{"trigger", "-p", strconv.Itoa(plain.PID), lp200}, "ERROR libpulp.so.0 is not loaded...", 1, "100", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := inspectRun(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit status %d, want %d (stderr %q)", code, tt.code, stderr)
			}
			if want, ok := strings.CutSuffix(tt.stdout, "..."); ok {
				if !strings.HasPrefix(stdout, want) {
					t.Errorf("stdout %q, want %q...", stdout, want)
				}
			} else if stdout != tt.stdout {
				t.Errorf("stdout %q, want %q", stdout, tt.stdout)
			}
			if !strings.Contains(stderr, tt.stderrIn) {
				t.Errorf("stderr %q does not contain %q", stderr, tt.stderrIn)
			}
			if got := p.Ask(t, "value"); got != tt.value {
				t.Errorf("calc_value = %s, want %s", got, tt.value)
			}
			p.Untraced(t)
		})
	}
}

func TestTriggerCommand_JSON(t *testing.T) {
	fx := triggertest.Build(t)
	p := triggertest.Start(t, nil, fx.App)
	stdout, stderr, code := inspectRun(t, "trigger", "--json", "-p", strconv.Itoa(p.PID), fx.LP["lp200"])
	if code != 0 {
		t.Fatalf("exit status %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 NDJSON lines, got %q", stdout)
	}
	var rec report.Process
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Schema != report.TriggerSchema || rec.Type != report.TypeProcess || rec.PID != p.PID ||
		rec.Result != report.Success || rec.Action != "apply" || rec.Comm != "app" || len(rec.PatchID) != 64 ||
		rec.Patch != fx.LP["lp200"] || rec.Timings.TotalUS <= 0 || rec.Timings.PauseUS <= 0 {
		t.Errorf("process record %+v", rec)
	}
	var sum report.Summary
	if err := json.Unmarshal([]byte(lines[1]), &sum); err != nil {
		t.Fatal(err)
	}
	want := report.Summary{Schema: report.TriggerSchema, Type: report.TypeSummary, Candidates: 1, Patched: 1, PatchesApplied: 1}
	if sum != want {
		t.Errorf("summary %+v, want %+v", sum, want)
	}
	p.Expect(t, map[string]string{"value": "200"})
}

func TestSetPatchableCommand(t *testing.T) {
	fx := triggertest.Build(t)
	p := triggertest.Start(t, nil, fx.App)
	pid := strconv.Itoa(p.PID)
	run := func(wantCode int, wantOut string, args ...string) {
		t.Helper()
		stdout, stderr, code := inspectRun(t, args...)
		if code != wantCode || !strings.Contains(stdout, wantOut) {
			t.Errorf("ulp %s: exit %d stdout %q stderr %q; want exit %d and %q", strings.Join(args, " "),
				code, stdout, stderr, wantCode, wantOut)
		}
	}
	run(0, "patching disabled", "set_patchable", "-p", pid, "disable")
	run(0, "SKIPPED blocked by user", "trigger", "-p", pid, fx.LP["lp200"])
	run(2, "", "set_patchable", "-p", pid, "maybe")
	run(2, "", "set_patchable", "enable")
	run(0, "patching enabled", "set_patchable", "-p", pid, "enable")
	run(0, "SUCCESS", "trigger", "-p", pid, fx.LP["lp200"])
	p.Expect(t, map[string]string{"value": "200"})
	p.Untraced(t)
}

// TestTriggerCommand_Glob: -p NAME-GLOB selects every preloaded process with
// a matching name; each gets a line naming it, then a summary.
func TestTriggerCommand_Glob(t *testing.T) {
	fx := triggertest.Build(t)
	name := fmt.Sprintf("g%d", os.Getpid()%1000000) // unique among concurrent tests
	bin := filepath.Join(fx.Dir, name)
	if err := os.Link(fx.App, bin); err != nil {
		t.Fatal(err)
	}
	p1 := triggertest.Start(t, nil, bin)
	p2 := triggertest.Start(t, nil, bin)
	stdout, stderr, code := inspectRun(t, "trigger", "-p", name+"*", fx.LP["lp200"])
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lo, hi := min(p1.PID, p2.PID), max(p1.PID, p2.PID)
	want := fmt.Sprintf("PID %d (%s): SUCCESS\nPID %d (%s): SUCCESS\nProcesses patched: 2, Skipped: 0, Failed: 0.\n", lo, name, hi, name)
	if stdout != want {
		t.Errorf("stdout %q, want %q", stdout, want)
	}
	p1.Expect(t, map[string]string{"value": "200"})
	p2.Expect(t, map[string]string{"value": "200"})
	// A revert says so in the summary.
	stdout, stderr, code = inspectRun(t, "trigger", "-p", name+"*", "--revert", fx.LP["lp200"])
	want = fmt.Sprintf("PID %d (%s): SUCCESS\nPID %d (%s): SUCCESS\nProcesses reverted: 2, Skipped: 0, Failed: 0.\n", lo, name, hi, name)
	if code != 0 || stdout != want {
		t.Errorf("revert: exit %d, stdout %q, want %q (%s)", code, stdout, want, stderr)
	}
	p1.Expect(t, map[string]string{"value": "100"})
}
