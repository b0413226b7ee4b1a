package trigger

import (
	"context"
	"math/rand/v2"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"ulp/internal/testenv"
	"ulp/livepatch/trigger/triggertest"
)

// TestAgentKilled kills the agent (build/ulp) with SIGKILL at random moments
// of apply, replace, revert and revert-all triggers while two threads call
// the patched function
// in a tight loop. After each kill the target must run, untraced and not
// stopped, and answer with the old or the new code: never a torn jump.
func TestAgentKilled(t *testing.T) {
	ulp := testenv.Artifact(t, "ulp")
	fx := triggertest.Build(t)
	p := triggertest.Start(t, nil, fx.Spin(t), "2")
	rng := rand.New(rand.NewPCG(1, 2))
	const rounds = 60
	completed := 0
	for i := range rounds {
		pid := itoa(p.PID)
		args := [][]string{
			{"trigger", "-p", pid, fx.LP["lp200"]},
			{"trigger", "-p", pid, "--revert-all=libcalc.so.1", fx.LP["lp300"]},
			{"trigger", "-p", pid, "--revert", fx.LP["lp200"]},
			{"trigger", "-p", pid, "--revert-all=libcalc.so.1"},
		}[i%4]
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		cmd := exec.CommandContext(ctx, ulp, args...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.IntN(6000)) * time.Microsecond)
		cmd.Process.Signal(syscall.SIGKILL)
		err := cmd.Wait()
		cancel()
		if err == nil {
			completed++
		}
		p.Untraced(t)
		if v := p.Ask(t, "value"); v != "100" && v != "200" && v != "300" {
			t.Fatalf("round %d: calc_value = %q", i, v)
		}
	}
	t.Logf("%d of %d triggers finished before the kill", completed, rounds)
}

func itoa(n int) string { return strconv.Itoa(n) }
