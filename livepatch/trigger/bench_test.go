package trigger

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"ulp/livepatch/report"
	"ulp/livepatch/trigger/triggertest"
)

// BenchmarkPause applies and reverts a patch on a process whose thread
// spins on the clock (calling the patched function) next to a main thread
// waiting in read(2), and no or 64 more threads sleeping, and reports the
// medians
// of the longest gap the spinning thread saw during each apply and revert, of the
// same gap measured over an idle interval of the same length (the noise of
// the machine), and of the agent's own pause and total times.
func BenchmarkPause(b *testing.B) {
	for _, sleepers := range []int{0, 64} {
		b.Run(fmt.Sprintf("sleepers=%d", sleepers), func(b *testing.B) { benchPause(b, sleepers) })
	}
}

func benchPause(b *testing.B, sleepers int) {
	fx := triggertest.Build(b)
	p := triggertest.Start(b, nil, fx.Spin(b), "1", strconv.Itoa(sleepers))
	gap := func() time.Duration {
		n, err := strconv.ParseInt(p.Ask(b, "gap"), 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		return time.Duration(n)
	}
	var applyGap, revertGap, idleGap, applyPause, revertPause, applyTotal []time.Duration
	run := func(req Request) (time.Duration, report.Process) {
		gap() // reset
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		rep := Run(ctx, p.PID, req, Options{Retries: 100})
		if rep.Result != report.Success {
			b.Fatalf("%s: %s %s", req.Action, rep.Result, rep.Reason)
		}
		return gap(), rep
	}
	for b.Loop() {
		g, rep := run(apply(fx.LP["lp200"]))
		applyGap = append(applyGap, g)
		applyPause = append(applyPause, time.Duration(rep.Timings.PauseUS)*time.Microsecond)
		applyTotal = append(applyTotal, time.Duration(rep.Timings.TotalUS)*time.Microsecond)
		g, rep = run(revert(fx.LP["lp200"]))
		revertGap = append(revertGap, g)
		revertPause = append(revertPause, time.Duration(rep.Timings.PauseUS)*time.Microsecond)
		gap()
		time.Sleep(time.Duration(rep.Timings.TotalUS) * time.Microsecond)
		idleGap = append(idleGap, gap())
	}
	us := func(d []time.Duration) float64 {
		slices.Sort(d)
		return float64(d[len(d)/2].Nanoseconds()) / 1000
	}
	b.ReportMetric(us(applyGap), "apply-gap-µs")
	b.ReportMetric(us(revertGap), "revert-gap-µs")
	b.ReportMetric(us(idleGap), "idle-gap-µs")
	b.ReportMetric(us(applyPause), "apply-pause-µs")
	b.ReportMetric(us(revertPause), "revert-pause-µs")
	b.ReportMetric(us(applyTotal), "apply-total-µs")
}
