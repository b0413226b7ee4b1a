package ptrace

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestTracer_ReusedAcrossProcesses seizes several processes in turn with one
// Tracer, detaching each with its threads running or stopped: every process
// must be left untraced and working, and the tracer thread kept for the
// next one while the detaches are clean.
func TestTracer_ReusedAcrossProcesses(t *testing.T) {
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
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			p, err := tr.Seize(ctx, tg.pid(), testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			if tt.reuse && prev != 0 && p.tracerTID != prev {
				t.Errorf("tracer thread %d, want %d kept from the previous process", p.tracerTID, prev)
			}
			if _, err := tr.Seize(ctx, tg.pid(), nil); !errors.Is(err, ErrTracerBusy) {
				t.Errorf("second Seize on a busy tracer: %v, want ErrTracerBusy", err)
			}
			if err := p.StopAll(ctx); err != nil {
				t.Fatal(err)
			}
			// mov $2, %eax; ret
			if err := p.Write(tg.value, []byte{0xb8, 2, 0, 0, 0, 0xc3}); err != nil {
				t.Fatal(err)
			}
			if !tt.stopped {
				if err := p.ResumeAll(); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.Detach(); err != nil {
				t.Fatal(err)
			}
			if p.LastPause() <= 0 {
				t.Errorf("LastPause = %v", p.LastPause())
			}
			if m := tracers(t, tg.pid()); len(m) != 0 {
				t.Fatalf("still traced after Detach: %v", m)
			}
			if got := tg.query(t); got != "2 0" {
				t.Fatalf("after: %q", got)
			}
			prev = p.tracerTID
			if !tt.reuse {
				prev = 0
			}
		})
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
