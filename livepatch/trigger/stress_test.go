package trigger

import (
	"path/filepath"
	"testing"

	"ulp/livepatch/report"
	"ulp/livepatch/trigger/triggertest"
)

// TestHammeredLoader runs 200 triggers (apply and revert in turn) on a
// process whose 15 threads keep malloc and dlopen/dlclose busy. The load
// of the container must never deadlock; with retries every trigger
// succeeds, and the process keeps running.
func TestHammeredLoader(t *testing.T) {
	fx := triggertest.Build(t)
	bin := filepath.Join(fx.Dir, "hammer")
	triggertest.Compile(t, bin, []string{"-O2", "-pthread", "-Wl,-rpath," + fx.Dir}, "hammer.c", fx.Calc, "-ldl")
	p := triggertest.Start(t, nil, bin, fx.Two)
	for i := range 100 {
		mustTrig(t, p.PID, apply(fx.LP["lp200"]), report.Success)
		if i%25 == 0 {
			p.Expect(t, map[string]string{"value": "200"})
		}
		mustTrig(t, p.PID, revert(fx.LP["lp200"]), report.Success)
	}
	p.Expect(t, map[string]string{"value": "100", "rounds": "all"})
	p.Untraced(t)
}

// TestThreadChurn triggers while 15 threads keep creating and joining
// threads: threads created and exiting during the attach, the load and the
// stop are all handled.
func TestThreadChurn(t *testing.T) {
	fx := triggertest.Build(t)
	bin := filepath.Join(fx.Dir, "hammer")
	triggertest.Compile(t, bin, []string{"-O2", "-pthread", "-Wl,-rpath," + fx.Dir}, "hammer.c", fx.Calc, "-ldl")
	p := triggertest.Start(t, nil, bin, fx.Two, "churn")
	for range 25 {
		mustTrig(t, p.PID, apply(fx.LP["lp200"]), report.Success)
		mustTrig(t, p.PID, revert(fx.LP["lp200"]), report.Success)
	}
	p.Expect(t, map[string]string{"value": "100", "rounds": "all"})
	p.Untraced(t)
}
