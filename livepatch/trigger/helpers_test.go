package trigger

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"ulp/livepatch/report"
	"ulp/livepatch/trigger/triggertest"
)

// trig runs one trigger in-process with a 30 s budget.
func trig(t *testing.T, pid int, req Request) report.Process {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	rep := Run(ctx, pid, req, Options{Retries: 100, Log: triggertest.Logger(t)})
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

func apply(path string) Request  { return Request{Action: report.Apply, Container: path} }
func revert(path string) Request { return Request{Action: report.Revert, Container: path} }
