package ptrace

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"sync"
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
	return t.seize(ctx, pid, log, false)
}

// Seize attaches to every thread of process pid (see Tracer.Seize) with a
// tracer of its own, which Detach ends. For one process; a program that
// handles many in turn reuses a Tracer.
func Seize(ctx context.Context, pid int, log *slog.Logger) (*Process, error) {
	return NewTracer().seize(ctx, pid, log, true)
}

func (t *Tracer) seize(ctx context.Context, pid int, log *slog.Logger, own bool) (*Process, error) {
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
	return attach(ctx, t, th, own, pid, log)
}

// release ends t's hold on a process: the thread is kept when the process
// was detached cleanly, else ended (see Tracer) and waited for.
func (t *Tracer) release(th *tracer, clean bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.busy = false
	if !clean && t.th == th {
		t.th = nil
		th.end()
	}
}

// Close ends the thread. The kernel detaches every thread of a process
// still held, which stops nothing (later calls on that Process fail with
// ErrDetached). Idempotent.
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
	tid     int // the OS thread's id
	started chan struct{}
	reqs    chan func()
	closing chan struct{}
	done    chan struct{}
	once    sync.Once
}

func newTracer() *tracer {
	tr := &tracer{started: make(chan struct{}), reqs: make(chan func()), closing: make(chan struct{}), done: make(chan struct{})}
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
	// Precise short sleeps while polling (the default slack is 50 µs).
	unix.Prctl(unix.PR_SET_TIMERSLACK, 1000, 0, 0, 0)
	for {
		select {
		case f := <-tr.reqs:
			f()
		case <-tr.closing:
			return
		}
	}
}

// do runs f on the tracer thread and waits for it. It reports false, without
// running f, once the tracer is stopped.
func (tr *tracer) do(f func()) bool {
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
