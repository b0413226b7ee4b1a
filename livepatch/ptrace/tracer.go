package ptrace

import (
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// tracer runs functions on one goroutine locked to one OS thread. Every
// ptrace and wait4 call of a Process goes through do: the kernel accepts
// ptrace requests only from the thread that attached.
type tracer struct {
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

// stop ends the tracer goroutine and with it the OS thread. Idempotent.
func (tr *tracer) stop() {
	tr.once.Do(func() { close(tr.closing) })
	<-tr.done
}
