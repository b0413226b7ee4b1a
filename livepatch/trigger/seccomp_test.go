package trigger

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"ulp/livepatch/procfs"
	"ulp/livepatch/report"
	"ulp/livepatch/trigger/triggertest"
)

// TestSeccompFilter: a process whose seccomp filter kills it on mmap with
// PROT_EXEC (Seccomp: 2 in its status) is SKIPPED with the reason, alive
// and untouched; with AllowSeccomp (the operator owns the filter) the load
// kills it, and that is an ERROR naming SIGSYS, never SKIPPED.
func TestSeccompFilter(t *testing.T) {
	fx := triggertest.Build(t)
	p := triggertest.Start(t, []string{"APP_SECCOMP=1"}, fx.App)
	status, err := os.ReadFile("/proc/" + itoa(p.PID) + "/status")
	if err != nil || !strings.Contains(string(status), "Seccomp:\t2") {
		t.Fatalf("the fixture has no seccomp filter: %v\n%s", err, status)
	}
	rep := mustTrig(t, p.PID, apply(fx.LP["lp200"]), report.Skipped)
	if !strings.HasPrefix(rep.Reason, ReasonSeccomp+": ") || !strings.Contains(rep.Reason, "--allow-seccomp") {
		t.Errorf("reason %q", rep.Reason)
	}
	p.Expect(t, map[string]string{"value": "100"})
	p.Untraced(t)
	if triggertest.Mapped(t, p.PID, fx.LP["lp200"]) {
		t.Error("container mapped")
	}

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	rep = Run(ctx, p.PID, apply(fx.LP["lp200"]), Options{AllowSeccomp: true, Log: triggertest.Logger(t)})
	if rep.Result != report.Error || rep.Reason != "process killed by signal SIGSYS during the trigger" {
		t.Errorf("with AllowSeccomp: %s %q, want ERROR process killed by signal SIGSYS during the trigger", rep.Result, rep.Reason)
	}
	if !procfs.Gone(p.PID) {
		t.Error("the process is still there")
	}
}
