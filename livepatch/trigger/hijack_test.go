package trigger

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"ulp/livepatch/abi"
	"ulp/livepatch/procfs"
	"ulp/livepatch/report"
	"ulp/livepatch/trigger/triggertest"

	"golang.org/x/sys/unix"
)

// threadByName returns the thread of pid whose comm is name.
func threadByName(t *testing.T, pid int, name string) int {
	t.Helper()
	tids, err := procfs.Tasks(pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, tid := range tids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(tid) + "/comm")
		if err == nil && strings.TrimSpace(string(b)) == name {
			return tid
		}
	}
	t.Fatalf("pid %d has no thread %q", pid, name)
	return 0
}

// TestHijackedThreadsUndisturbed hijacks, one at a time and many times,
// a thread spinning with data in its red zone, a thread in nanosleep
// (restarted through restart_syscall) and a thread blocked in read(2)
// (restarted with its own number), and checks that each noticed nothing:
// red zone intact, whole sleeps, no EINTR, and the reader still reads. A
// thread on a stack too small for the call is left alone. Some calls meet
// a signal on its way to the thread.
func TestHijackedThreadsUndisturbed(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "threads")
	triggertest.Compile(t, bin, []string{"-O2", "-pthread"}, "threads.c")
	tg := triggertest.Start(t, nil, bin)
	p, rt := seizeRuntime(t, tg.PID)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	for _, name := range []string{"redzone", "sleeper", "reader"} {
		tid := threadByName(t, tg.PID, name)
		for i := range 30 {
			// Every other call as call makes it: notified, the thread
			// held in its stop until the next call resumes it.
			req := abi.NewRequest(0, abi.OpPing)
			req.ID = callID.Add(1)
			notify := i%2 == 1
			if notify {
				req.Flags |= abi.ReqNotify
			}
			if err := p.Resume(tid); err != nil {
				t.Fatalf("%s: resume before ping %d: %v", name, i, err)
			}
			if i%3 == 2 {
				// A signal on its way when the call comes (as a late
				// notification of the previous call is): the thread
				// stops for it first, and is resumed with it.
				if err := unix.Tgkill(tg.PID, tid, unix.SIGURG); err != nil {
					t.Fatal(err)
				}
			}
			c, err := callOn(ctx, p, rt, tid, notify, req)
			if err != nil {
				t.Fatalf("%s: ping %d: %v", name, i, err)
			}
			if c.Result != abi.OK {
				t.Fatalf("%s: ping %d: %v", name, i, c.Result)
			}
		}
	}
	// A thread whose stack is too small for the call is never hijacked.
	small := threadByName(t, tg.PID, "small")
	req := abi.NewRequest(0, abi.OpPing)
	if _, err := callOn(ctx, p, rt, small, false, req); !errors.Is(err, errSkipThread) {
		t.Fatalf("call on the small stack: %v, want errSkipThread", err)
	}
	if err := p.Detach(); err != nil {
		t.Fatal(err)
	}
	tg.Untraced(t)
	for i := 1; i <= 3; i++ {
		if got := tg.Ask(t, "pipe"); got != strconv.Itoa(i) {
			t.Fatalf("reader: %q reads, want %d", got, i)
		}
	}
	time.Sleep(50 * time.Millisecond) // let the sleeper finish a sleep begun before the detach
	if got := tg.Ask(t, "errors"); got != "redzone=0 sleep=0 read=0 rounds=yes" {
		t.Fatalf("errors: %s", got)
	}
}

// TestParentNeverSeesStop: a parent waiting for its child with WUNTRACED
// sees no stop while the child is patched and reverted.
func TestParentNeverSeesStop(t *testing.T) {
	fx := triggertest.Build(t)
	parent := filepath.Join(fx.Dir, "parent")
	triggertest.Compile(t, parent, []string{"-O2"}, "parent.c")
	status := filepath.Join(fx.Dir, "status")
	triggertest.Start(t, nil, parent, status, fx.App)
	b, err := os.ReadFile(status)
	if err != nil {
		t.Fatal(err)
	}
	child, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(string(b), "child ")))
	if err != nil {
		t.Fatalf("status file %q", b)
	}
	for range 5 {
		mustTrig(t, child, apply(fx.LP["lp200"]), report.Success)
		mustTrig(t, child, revert(fx.LP["lp200"]), report.Success)
	}
	if b, _ := os.ReadFile(status); strings.Contains(string(b), "stopped") || strings.Contains(string(b), "exited") {
		t.Fatalf("the parent saw: %q", b)
	}
}
