package trigger

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"ulp/livepatch/report"
	"ulp/livepatch/target"
	"ulp/livepatch/trigger/triggertest"
)

// TestSessionShared runs triggers as a whole-host run does: in one
// Session, by its workers. The container is opened and checked once: a file
// put at its path after the first trigger does not reach the second
// process, which loads the same open file; a new session reads the new
// file.
func TestSessionShared(t *testing.T) {
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
	o := Options{Retries: 100, Log: triggertest.Logger(t)}
	run := func(s *Session, pid int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		reps := s.Run(ctx, slices.Values([]target.Found{{PID: pid}}), []Request{apply(path)}, 1)
		if len(reps) != 1 || len(reps[0]) != 1 || reps[0][0].Result != report.Success {
			t.Fatalf("apply to %d: %+v", pid, reps)
		}
	}

	put(fx.LP["lp200"])
	s := NewSession(o)
	run(s, p1.PID)
	put(fx.LP["lp300"]) // after the session's check: not what it loads
	run(s, p2.PID)
	s.Close()
	for _, p := range []*triggertest.Proc{p1, p2} {
		p.Untraced(t)
		p.Expect(t, map[string]string{"value": "200"})
	}

	next := NewSession(o)
	defer next.Close()
	run(next, p1.PID)
	p1.Untraced(t)
	p1.Expect(t, map[string]string{"value": "300"})
}
