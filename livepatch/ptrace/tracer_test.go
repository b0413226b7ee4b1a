package ptrace

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestTracer_ReusedAcrossProcesses seizes several processes in turn with one
// Tracer, detaching each with its threads running or stopped, from another
// goroutine or inside Do: every process must be left untraced and working,
// and the tracer thread kept for the next one while the detaches are clean.
func TestTracer_ReusedAcrossProcesses(t *testing.T) {
	for _, inDo := range []bool{false, true} {
		t.Run(fmt.Sprintf("inDo=%v", inDo), func(t *testing.T) { testTracerReuse(t, inDo) })
	}
}

func testTracerReuse(t *testing.T, inDo bool) {
	tests := []struct {
		name    string
		args    []string
		stopped bool // detach inside the stop window
		reuse   bool // the thread must be kept (no churn of threads)
	}{
		{"single thread, running", nil, false, true},
		{"single thread, stopped", nil, true, true},
		{"three spinning threads, running", []string{"3"}, false, true},
		{"three spinning threads, stopped", []string{"3"}, true, true},
		{"churning threads, running", []string{"1", "2"}, false, false},
		{"churning threads, stopped", []string{"1", "2"}, true, false},
	}
	tr := NewTracer()
	t.Cleanup(tr.Close)
	prev := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := startTarget(t, tt.args...)
			if inDo {
				if err := tr.Do(func() { seizeWriteDetach(t, tr, tg, tt.stopped, tt.reuse, &prev, true) }); err != nil {
					t.Fatal(err)
				}
			} else {
				seizeWriteDetach(t, tr, tg, tt.stopped, tt.reuse, &prev, false)
			}
			if m := tracers(t, tg.pid()); len(m) != 0 {
				t.Fatalf("still traced after Detach: %v", m)
			}
			if got := tg.query(t); got != "2 0" {
				t.Fatalf("after: %q", got)
			}
		})
	}
}

// seizeWriteDetach seizes tg with tr, writes value() while every thread is
// stopped, and detaches, with the threads resumed first unless stopped.
// Failures are reported with Error (this may run on the tracer thread).
func seizeWriteDetach(t *testing.T, tr *Tracer, tg *target, stopped, reuse bool, prev *int, inDo bool) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	p, err := tr.Seize(ctx, tg.pid(), testLogger(t))
	if err != nil {
		t.Error(err)
		return
	}
	defer p.Detach()
	if reuse && *prev != 0 && p.tracerTID != *prev {
		t.Errorf("tracer thread %d, want %d kept from the previous process", p.tracerTID, *prev)
	}
	if inDo && p.tracerTID != unix.Gettid() {
		t.Errorf("inside Do on thread %d, the tracer thread is %d", unix.Gettid(), p.tracerTID)
	}
	if _, err := tr.Seize(ctx, tg.pid(), nil); !errors.Is(err, ErrTracerBusy) {
		t.Errorf("second Seize on a busy tracer: %v, want ErrTracerBusy", err)
	}
	if err := p.StopAll(ctx); err != nil {
		t.Error(err)
		return
	}
	// mov $2, %eax; ret
	if err := p.Write(tg.value, []byte{0xb8, 2, 0, 0, 0, 0xc3}); err != nil {
		t.Error(err)
		return
	}
	if !stopped {
		if err := p.ResumeAll(); err != nil {
			t.Error(err)
			return
		}
	}
	if err := p.Detach(); err != nil {
		t.Error(err)
		return
	}
	if p.LastPause() <= 0 {
		t.Errorf("LastPause = %v", p.LastPause())
	}
	*prev = p.tracerTID
	if !reuse {
		*prev = 0
	}
}

// TestTracer_CloseWhileHeld closes a Tracer that holds a process: the kernel
// detaches it, and the Process reports ErrDetached.
func TestTracer_CloseWhileHeld(t *testing.T) {
	tg := startTarget(t, "2")
	tr := NewTracer()
	p, err := tr.Seize(t.Context(), tg.pid(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	tr.Close()
	if m := tracers(t, tg.pid()); len(m) != 0 {
		t.Fatalf("still traced after Close: %v", m)
	}
	if err := p.StopAll(t.Context()); !errors.Is(err, ErrDetached) {
		t.Errorf("StopAll after Close: %v, want ErrDetached", err)
	}
	if err := p.Detach(); err != nil {
		t.Errorf("Detach after Close: %v", err)
	}
	if _, err := tr.Seize(t.Context(), tg.pid(), nil); !errors.Is(err, ErrDetached) {
		t.Errorf("Seize after Close: %v, want ErrDetached", err)
	}
	if got := tg.query(t); got != "1 0" {
		t.Fatalf("after: %q", got)
	}
}

// TestTracer_ThreadEndedAfterUncleanDetach detaches a process that exited
// while held (its threads' exits may be left unreaped), from another
// goroutine and inside Do: the tracer thread is ended (after Do's function
// returns) and the next process gets a new one, and is left clean.
func TestTracer_ThreadEndedAfterUncleanDetach(t *testing.T) {
	for _, inDo := range []bool{false, true} {
		t.Run(fmt.Sprintf("inDo=%v", inDo), func(t *testing.T) {
			tr := NewTracer()
			t.Cleanup(tr.Close)
			dying := startTarget(t, "2")
			first := 0
			body := func() {
				p, err := tr.Seize(t.Context(), dying.pid(), testLogger(t))
				if err != nil {
					t.Error(err)
					return
				}
				first = p.tracerTID
				dying.cmd.Process.Kill()
				for deadline := time.Now().Add(10 * time.Second); !errors.Is(p.Poll(), ErrExited); {
					if time.Now().After(deadline) {
						t.Error("exit not seen")
						break
					}
					time.Sleep(time.Millisecond)
				}
				p.Detach()
			}
			if inDo {
				if err := tr.Do(body); err != nil {
					t.Fatal(err)
				}
			} else {
				body()
			}
			if _, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", first)); err == nil {
				t.Errorf("tracer thread %d still exists", first)
			}
			tg := startTarget(t)
			prev := first
			seizeWriteDetach(t, tr, tg, false, false, &prev, false)
			if prev == first {
				t.Errorf("the next process was seized by the ended thread %d", first)
			}
			if m := tracers(t, tg.pid()); len(m) != 0 {
				t.Fatalf("still traced after Detach: %v", m)
			}
		})
	}
}
