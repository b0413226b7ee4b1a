package trigger

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"ulp/livepatch/ptrace"
	"ulp/livepatch/report"
	"ulp/livepatch/trigger/triggertest"
)

// TestContainersShared runs triggers as a whole-host run does: one worker's
// Tracer, each trigger on its thread (Do), and one Containers for the run.
// The container is opened and checked once: a file put at its path after
// the first trigger does not reach the second process, which loads the
// same open file; a new run (new Containers) reads the new file.
func TestContainersShared(t *testing.T) {
	fx := triggertest.Build(t)
	p1 := triggertest.Start(t, nil, fx.App)
	p2 := triggertest.Start(t, nil, fx.App)
	path := filepath.Join(t.TempDir(), "fix.so")
	put := func(src string) {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		tmp := path + ".new"
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	tr := ptrace.NewTracer()
	t.Cleanup(tr.Close)
	run := func(cs *Containers, pid int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		var rep report.Process
		o := Options{Retries: 100, Log: triggertest.Logger(t), Tracer: tr, Containers: cs}
		if err := tr.Do(func() { rep = Run(ctx, pid, apply(path), o) }); err != nil {
			t.Fatal(err)
		}
		if rep.Result != report.Success {
			t.Fatalf("apply to %d: %s %s", pid, rep.Result, rep.Reason)
		}
	}

	put(fx.LP["lp200"])
	var cs Containers
	run(&cs, p1.PID)
	put(fx.LP["lp300"]) // after the run's check: not what it loads
	run(&cs, p2.PID)
	cs.Close()
	for _, p := range []*triggertest.Proc{p1, p2} {
		p.Untraced(t)
		p.Expect(t, map[string]string{"value": "200"})
	}

	var next Containers
	defer next.Close()
	run(&next, p1.PID)
	p1.Untraced(t)
	p1.Expect(t, map[string]string{"value": "300"})
}
