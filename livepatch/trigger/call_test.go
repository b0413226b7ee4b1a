package trigger

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"ulp/livepatch/abi"
	"ulp/livepatch/ptrace"
	"ulp/livepatch/target"
	"ulp/livepatch/trigger/triggertest"
)

// seizeRuntime opens and seizes a preloaded process.
func seizeRuntime(t *testing.T, pid int) (*ptrace.Process, runtimeInfo) {
	t.Helper()
	tp, err := target.Open(pid)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := tp.ReadABI()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	p, err := ptrace.Seize(ctx, pid, triggertest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Detach() })
	return p, runtimeInfo{ABI: tp.ABI, Entry: blk.Entry, TextStart: tp.Runtime.Start, TextEnd: tp.Runtime.End}
}

func TestCall_Ping(t *testing.T) {
	for _, threads := range []int{0, 3} {
		t.Run(fmt.Sprintf("%d spinning threads", threads), func(t *testing.T) {
			bin := filepath.Join(t.TempDir(), "ping")
			triggertest.Compile(t, bin, []string{"-O1", "-pthread"}, "ping.c")
			tg := triggertest.Start(t, nil, bin, fmt.Sprint(threads))
			if got := tg.Ask(t, "x"); got != "ok 1" {
				t.Fatalf("before: %q", got)
			}
			p, rt := seizeRuntime(t, tg.PID)
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			for i := range 20 {
				req := abi.NewRequest(0, abi.OpPing)
				c, err := call(ctx, p, rt, req)
				if err != nil {
					t.Fatalf("ping %d: %v", i, err)
				}
				if c.Result != abi.OK || c.ID != req.ID {
					t.Fatalf("ping %d: result %v id %d, want ok id %d", i, c.Result, c.ID, req.ID)
				}
			}
			c, err := readCall(tg.PID, rt)
			if err != nil {
				t.Fatal(err)
			}
			if c.State != abi.CallIdle {
				t.Fatalf("call state after ping: %v", c.State)
			}
			if err := p.Detach(); err != nil {
				t.Fatal(err)
			}
			tg.Untraced(t)
			// The main thread was hijacked inside read(2): it reads on.
			if got := tg.Ask(t, "y"); got != "ok 2" {
				t.Fatalf("after: %q", got)
			}
		})
	}
}
