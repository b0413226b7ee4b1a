package trigger

import (
	"context"
	"strings"
	"testing"
	"time"

	"ulp/livepatch/report"
	"ulp/livepatch/trigger/triggertest"
)

// TestLoadTimeout: a load that outlasts the timeout (a constructor that
// takes 3 s) ends the trigger with ERROR in time, leaves the process
// untraced, and the hijacked thread comes back by itself once the load
// ends; later triggers succeed.
func TestLoadTimeout(t *testing.T) {
	fx := triggertest.Build(t)
	slow := fx.Pack(t, "slow", "lp_slow.c", nil, fx.Calc, "calc_value:calc_value_lp")
	p := triggertest.Start(t, nil, fx.App)
	start := time.Now()
	rep := Run(t.Context(), p.PID, apply(slow), Options{Timeout: 300 * time.Millisecond, Log: triggertest.Logger(t)})
	if rep.Result != report.Error || !strings.Contains(rep.Reason, "did not finish") {
		t.Fatalf("slow load: %s %q, want ERROR ... did not finish", rep.Result, rep.Reason)
	}
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Errorf("the trigger took %v with a 300 ms timeout", d)
	}
	p.Untraced(t)
	// The main thread was the one loading; it answers once the load ends.
	p.Expect(t, map[string]string{"value": "100"})
	mustTrig(t, p.PID, apply(fx.LP["lp200"]), report.Success)
	p.Expect(t, map[string]string{"value": "200"})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// The slow container is loaded by now: applying it does not wait again.
	if rep := Run(ctx, p.PID, apply(slow), Options{Timeout: 300 * time.Millisecond}); rep.Result != report.Success {
		t.Fatalf("slow again: %s %s", rep.Result, rep.Reason)
	}
	p.Expect(t, map[string]string{"value": "900"})
}
