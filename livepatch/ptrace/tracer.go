package ptrace

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// ErrTracerBusy means a Tracer was asked to seize a process while it holds
// another one.
var ErrTracerBusy = errors.New("tracer already holds a process")

// Tracer seizes processes one at a time, all from the same OS thread, so
// that a program handling many processes in turn does not start and end a
// thread for each (Go makes a thread exit only with a locked goroutine, and
// its exit takes most of a millisecond). Its zero value is not usable: use
// NewTracer. A Tracer must be closed; its methods may be called from any
// goroutine.
//
// A Process it seized is detached explicitly (PTRACE_DETACH, after stopping
// the threads that run), and the thread is kept for the next one. When
// that cannot be done cleanly (a thread that does not stop in time, a
// process that exited while held), the thread is ended instead, which makes
// the kernel detach what is left, and the next Seize starts another.
//
// Each request of a Process is handed to the tracer thread, which costs two
// switches of threads; code that runs inside Do is on that thread already,
// and its requests are issued directly.
type Tracer struct {
	mu     sync.Mutex
	th     *tracer // the current thread; nil before the first Seize and after it was ended
	busy   bool
	closed bool
}

// NewTracer returns a Tracer; its thread starts with the first Seize.
func NewTracer() *Tracer { return &Tracer{} }

// Seize is the package's Seize on t's thread. It fails with ErrTracerBusy
// while t holds another process.
func (t *Tracer) Seize(ctx context.Context, pid int, log *slog.Logger) (*Process, error) {
	return t.seize(ctx, pid, log, false, false)
}

// Lock is Seize of the main thread alone (see the package's Lock) on t's
// thread.
func (t *Tracer) Lock(ctx context.Context, pid int, log *slog.Logger) (*Process, error) {
	return t.seize(ctx, pid, log, false, true)
}

// Lock seizes the main thread of process pid only, with a tracer of its
// own: the lock against a second agent (which seizes every thread, the main
// one first, and fails on it), at the cost of one thread however many the
// process has. Other threads are seized when needed: SeizeThread one,
// StopAll (or SeizeAll) every one.
func Lock(ctx context.Context, pid int, log *slog.Logger) (*Process, error) {
	return NewTracer().seize(ctx, pid, log, true, true)
}

// Seize attaches to every thread of process pid (see Tracer.Seize) with a
// tracer of its own, which Detach ends. For one process; a program that
// handles many in turn reuses a Tracer.
func Seize(ctx context.Context, pid int, log *slog.Logger) (*Process, error) {
	return NewTracer().seize(ctx, pid, log, true, false)
}

func (t *Tracer) seize(ctx context.Context, pid int, log *slog.Logger, own, lock bool) (*Process, error) {
	t.mu.Lock()
	switch {
	case t.closed:
		t.mu.Unlock()
		return nil, ErrDetached
	case t.busy:
		t.mu.Unlock()
		return nil, ErrTracerBusy
	}
	if t.th == nil {
		t.th = newTracer()
	}
	t.busy = true
	th := t.th
	t.mu.Unlock()
	return attach(ctx, t, th, own, lock, pid, log)
}

// Do runs f on t's thread (started if need be) and waits for it: the
// Processes that f seizes with t, or that t holds, then issue their requests
// without a switch of threads. A Detach inside f that cannot leave the
// process clean ends the thread when f returns (and Do waits for it), not
// at once. Do fails with ErrDetached once t is closed.
func (t *Tracer) Do(f func()) error {
	for {
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			return ErrDetached
		}
		if t.th == nil {
			t.th = newTracer()
		}
		th := t.th
		t.mu.Unlock()
		if th.do(f) {
			if th.retired.Load() {
				th.end()
			}
			return nil
		}
		// th was ended meanwhile (a Detach that could not be clean): the
		// next round starts another.
	}
}

// release ends t's hold on a process: the thread is kept when the process
// was detached cleanly, else ended (see Tracer) and waited for, or, when
// the caller runs on it (Do), marked to end when Do's function returns.
func (t *Tracer) release(th *tracer, clean bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.busy = false
	if clean {
		return
	}
	if t.th == th {
		t.th = nil
	}
	if th.onThread() {
		th.retired.Store(true)
		return
	}
	th.end()
}

// Close ends the thread. The kernel detaches every thread of a process
// still held, which stops nothing (later calls on that Process fail with
// ErrDetached). Idempotent; not to be called inside Do.
func (t *Tracer) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	if t.th != nil {
		t.th.end()
		t.th = nil
	}
}

// tracer runs functions on one goroutine locked to one OS thread. Every
// ptrace and wait4 call of a Process goes through do: the kernel accepts
// ptrace requests only from the thread that attached.
type tracer struct {
	tid     int         // the OS thread's id
	retired atomic.Bool // to end after the function of Do that runs now
	// sigchld receives the SIGCHLD the kernel sends the agent whenever a
	// tracee stops or exits (and for the agent's other children): the
	// waits of a Process block on it, with a timeout, instead of polling.
	sigchld chan os.Signal
	started chan struct{}
	reqs    chan func()
	closing chan struct{}
	done    chan struct{}
	once    sync.Once
}

func newTracer() *tracer {
	tr := &tracer{started: make(chan struct{}), reqs: make(chan func()), closing: make(chan struct{}), done: make(chan struct{}),
		sigchld: make(chan os.Signal, 1)}
	signal.Notify(tr.sigchld, unix.SIGCHLD)
	go tr.loop()
	<-tr.started
	return tr
}

func (tr *tracer) loop() {
	// Never unlocked: the OS thread is tainted by its tracees and exits
	// with this goroutine, which makes the kernel detach what is left.
	runtime.LockOSThread()
	if unix.Gettid() == unix.Getpid() {
		// Go never ends the main thread (it parks it instead), so its
		// tracees would stay attached. Hold the main thread while another
		// goroutine locks a thread of its own, then give it back.
		go tr.loop()
		<-tr.started
		runtime.UnlockOSThread()
		return
	}
	tr.tid = unix.Gettid()
	close(tr.started)
	defer close(tr.done)
	defer signal.Stop(tr.sigchld)
	for {
		select {
		case f := <-tr.reqs:
			f()
			if tr.retired.Load() {
				return // Do's caller waits for the thread to go
			}
		case <-tr.closing:
			return
		}
	}
}

// onThread reports whether the caller runs on the tracer thread (inside
// Do's function).
func (tr *tracer) onThread() bool { return unix.Gettid() == tr.tid }

// do runs f on the tracer thread and waits for it, or runs it at once when
// the caller is on the tracer thread. It reports false, without running f,
// once the tracer is stopped.
func (tr *tracer) do(f func()) bool {
	if tr.onThread() {
		f()
		return true
	}
	ch := make(chan struct{})
	select {
	case tr.reqs <- func() { f(); close(ch) }:
	case <-tr.closing:
		return false
	}
	<-ch
	return true
}

// end ends the tracer goroutine and with it the OS thread, and waits until
// the thread is gone, so that the kernel has detached its tracees (their
// TracerPid reads 0). Idempotent.
func (tr *tracer) end() {
	tr.once.Do(func() { close(tr.closing) })
	<-tr.done
	task := "/proc/self/task/" + strconv.Itoa(tr.tid)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		if _, err := os.Stat(task); err != nil {
			return
		}
		time.Sleep(20 * time.Microsecond)
	}
}
