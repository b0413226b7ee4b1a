package ptrace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"ulp/livepatch/procfs"
)

// Errors reported by Process methods. They are sentinels for errors.Is; the
// errors returned wrap them with the PID or TID concerned.
var (
	// ErrExited means the target process exited while it was held.
	ErrExited = errors.New("process exited")
	// ErrThreadExited means one thread exited; the process may live on.
	ErrThreadExited = errors.New("thread exited")
	// ErrBusy means another tracer (another agent, a debugger) holds the
	// process: retry later.
	ErrBusy = errors.New("process is traced by another program")
	// ErrDetached means the Process was already detached.
	ErrDetached = errors.New("process detached")
	// ErrNotStopped means the thread is running; the request needs a stop.
	ErrNotStopped = errors.New("thread is not stopped")
)

// stopKind tells why a thread is in a ptrace-stop.
type stopKind uint8

const (
	stopInterrupt stopKind = iota + 1 // PTRACE_EVENT_STOP by SIGTRAP: PTRACE_INTERRUPT or a new thread
	stopSignal                        // signal-delivery-stop: sig is re-injected on resume
	stopGroup                         // group-stop (job control): resumed with PTRACE_LISTEN
	stopEvent                         // PTRACE_EVENT_CLONE and other events
)

// thread is one traced task. Only the tracer goroutine touches it.
type thread struct {
	tid         int
	stopped     bool
	kind        stopKind
	sig         int         // signal to re-inject (stopSignal)
	wantStop    bool        // the caller asked for this thread to stay stopped
	interrupted bool        // PTRACE_INTERRUPT sent, its stop not seen yet
	holdIf      func() bool // ResumeHolding: hold the first stop seen while it reports true
}

// Process is a seized target. Every thread is traced; threads run unless the
// caller stopped them. A Process must be released with Detach, on every path.
// Its methods must not be called concurrently.
type Process struct {
	pid       int
	owner     *Tracer
	tr        *tracer
	own       bool // the tracer was made for this process: Detach ends it
	tracerTID int
	mem       *os.File
	log       *slog.Logger

	// Owned by the tracer goroutine.
	threads  map[int]*thread
	all      bool // every thread is seized (else the main thread and those of SeizeThread)
	stopAll  bool // new threads stay stopped
	exited   bool
	detached bool
	// killedBy is the signal that killed a thread of the process while it
	// was held, as wait4 reported it (0: none seen); written by the tracer
	// goroutine, read by anyone.
	killedBy atomic.Int32

	stopStart time.Time
	lastPause time.Duration
}

// ThreadState describes one thread of a seized process.
type ThreadState struct {
	TID     int
	Stopped bool
	// Signal is a signal the thread was about to receive when it stopped; it
	// is delivered when the thread resumes or is detached.
	Signal int
	// JobStop is set for a thread stopped by job control (SIGSTOP and
	// friends): resuming it leaves it stopped for its process group.
	JobStop bool
}

// attach attaches to every thread of process pid with PTRACE_SEIZE, on
// thread th of t, without stopping any of them, rescanning /proc/PID/task
// until no new thread appears. Threads created later are traced
// automatically (PTRACE_O_TRACECLONE). The caller must call Detach.
//
// An EPERM is returned with advice (already traced by another PID, yama
// ptrace_scope, another user's process) and the errno still wrapped; a
// process held by another tracer gives an error matching ErrBusy.
//
// With lock, only the main thread is seized (Lock).
func attach(ctx context.Context, t *Tracer, th *tracer, own, lock bool, pid int, log *slog.Logger) (*Process, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Process{
		pid:       pid,
		owner:     t,
		tr:        th,
		own:       own,
		tracerTID: th.tid,
		log:       log.With("pid", pid),
		threads:   make(map[int]*thread),
	}
	var err error
	switch {
	case pid <= 0:
		err = fmt.Errorf("seize: invalid pid %d", pid)
	case pid == os.Getpid():
		err = fmt.Errorf("seize %d: refusing to trace ourselves", pid)
	default:
		seize := p.seizeAll
		if lock {
			seize = p.seizeMain
		}
		if !p.tr.do(func() { err = seize(ctx) }) {
			err = ErrDetached // the Tracer was closed meanwhile
		}
	}
	if err == nil {
		p.mem, err = os.OpenFile("/proc/"+strconv.Itoa(pid)+"/mem", os.O_RDWR, 0)
		if errors.Is(err, unix.ESRCH) || errors.Is(err, os.ErrNotExist) {
			err = fmt.Errorf("seize %d: %w: %w", pid, ErrExited, err)
		}
	}
	if err != nil {
		p.Detach()
		return nil, err
	}
	return p, nil
}

// PID returns the process id.
func (p *Process) PID() int { return p.pid }

// Log returns the process's logger (with its pid).
func (p *Process) Log() *slog.Logger { return p.log }

// run runs f on the tracer thread; ErrDetached once the tracer is gone.
func (p *Process) run(f func() error) error {
	var err error
	if !p.tr.do(func() {
		if p.detached {
			err = ErrDetached
			return
		}
		err = f()
	}) {
		return ErrDetached
	}
	return err
}

// seizeMain seizes the main thread.
func (p *Process) seizeMain(ctx context.Context) error {
	if err := p.seizeOne(p.pid); err != nil {
		return err
	}
	if _, ok := p.threads[p.pid]; !ok {
		return fmt.Errorf("seize %d: %w", p.pid, ErrExited)
	}
	_, err := p.drain()
	return err
}

// seizeOne seizes thread tid unless it is seized already.
func (p *Process) seizeOne(tid int) error {
	if _, ok := p.threads[tid]; ok {
		return nil
	}
	how, err := p.seizeTask(tid)
	if err != nil || how == seizeExited {
		return err
	}
	p.threads[tid] = &thread{tid: tid, wantStop: p.stopAll}
	return nil
}

// SeizeThread seizes thread tid of the process (Lock seized the main one
// only) without stopping it. A thread that exited meanwhile gives
// ErrThreadExited.
func (p *Process) SeizeThread(tid int) error {
	return p.run(func() error {
		if err := p.seizeOne(tid); err != nil {
			return err
		}
		if _, ok := p.threads[tid]; !ok {
			return fmt.Errorf("seize thread %d: %w", tid, ErrThreadExited)
		}
		return nil
	})
}

// SeizeAll seizes every thread of the process (after Lock), without
// stopping any.
func (p *Process) SeizeAll(ctx context.Context) error {
	return p.run(func() error { return p.seizeAll(ctx) })
}

// seizeAll seizes every task until a scan finds no task that was not
// traced already. A task traced already is one seized by an earlier round
// or one a traced thread created (PTRACE_O_TRACECLONE attached it at
// birth, and its clone event may not have been drained yet): a scan that
// needs no explicit seize shows that every task alive at the scan is
// traced, so every task created after it is too. Counting auto-attached
// tasks as new would never settle while threads keep creating threads.
func (p *Process) seizeAll(ctx context.Context) error {
	if p.all {
		return nil
	}
	for round := 0; ; round++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("seize %d: %w", p.pid, err)
		}
		if round > 1000 {
			return fmt.Errorf("seize %d: thread list does not settle", p.pid)
		}
		tids, err := procfs.Tasks(p.pid)
		if err != nil {
			if errors.Is(err, procfs.ErrNoProcess) {
				return fmt.Errorf("seize %d: %w", p.pid, ErrExited)
			}
			return fmt.Errorf("seize %d: %w", p.pid, err)
		}
		added := 0
		for _, tid := range tids {
			if _, ok := p.threads[tid]; ok {
				continue
			}
			how, err := p.seizeTask(tid)
			if err != nil {
				return err
			}
			if how == seizeExited {
				continue
			}
			p.threads[tid] = &thread{tid: tid, wantStop: p.stopAll}
			if how == seizedNow {
				added++
			}
		}
		if _, err := p.drain(); err != nil {
			return err
		}
		if _, ok := p.threads[p.pid]; !ok && round == 0 {
			return fmt.Errorf("seize %d: %w", p.pid, ErrExited)
		}
		if added == 0 {
			p.log.Debug("seized", "threads", len(p.threads))
			p.all = true
			return nil
		}
	}
}

// How seizeTask found a task.
type seizeResult int

const (
	seizedNow     seizeResult = iota // PTRACE_SEIZE attached it now
	tracedAlready                    // traced by this tracer already (PTRACE_O_TRACECLONE)
	seizeExited                      // exited meanwhile
)

// seizeTask seizes one task and says how it found it. On EPERM it looks at
// TracerPid: our own tracer thread means the task was attached already
// through PTRACE_O_TRACECLONE; another one means another agent or debugger
// holds the process (ErrBusy); none, that such a tracer was just leaving,
// so the SEIZE is tried again a few times.
func (p *Process) seizeTask(tid int) (seizeResult, error) {
	for attempt := 0; ; attempt++ {
		err := ptrace(unix.PTRACE_SEIZE, tid, 0, unix.PTRACE_O_TRACECLONE)
		switch {
		case err == nil:
			return seizedNow, nil
		case errors.Is(err, unix.ESRCH):
			return seizeExited, nil
		case !errors.Is(err, unix.EPERM):
			return 0, seizeError(p.pid, tid, err)
		}
		switch tracer := procfs.Tracer(tid); {
		case tracer == p.tracerTID:
			return tracedAlready, nil
		case tracer != 0:
			return 0, busyError(p.pid, tracer, err)
		case taskGone(tid):
			return seizeExited, nil // an exited thread not yet reaped refuses attach
		case attempt >= 20:
			return 0, seizeError(p.pid, tid, err)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// Threads returns the traced threads, sorted by TID.
func (p *Process) Threads() []ThreadState {
	var out []ThreadState
	p.run(func() error {
		p.drain()
		for _, th := range p.threads {
			out = append(out, ThreadState{TID: th.tid, Stopped: th.stopped, Signal: th.sig,
				JobStop: th.stopped && th.kind == stopGroup})
		}
		return nil
	})
	slices.SortFunc(out, func(a, b ThreadState) int { return a.TID - b.TID })
	return out
}

// Poll handles pending ptrace events without blocking: it resumes threads
// that stopped for a signal (re-injecting it) or for a new clone, and notes
// threads that exited. Call it while waiting for something the running
// threads do. It returns ErrExited once the process is gone.
func (p *Process) Poll() error {
	return p.run(func() error {
		if _, err := p.drain(); err != nil {
			return err
		}
		if p.exited {
			return fmt.Errorf("pid %d: %w", p.pid, ErrExited)
		}
		return nil
	})
}

// Interrupt stops thread tid with PTRACE_INTERRUPT and waits for the stop.
func (p *Process) Interrupt(ctx context.Context, tid int) error {
	return p.run(func() error {
		th, err := p.thread(tid)
		if err != nil {
			return err
		}
		th.wantStop, th.holdIf = true, nil
		if err := p.interrupt(th); err != nil {
			return err
		}
		return p.waitUntil(ctx, func() (bool, error) {
			if _, ok := p.threads[tid]; !ok {
				return false, fmt.Errorf("interrupt thread %d: %w", tid, ErrThreadExited)
			}
			return th.stopped, nil
		})
	})
}

// StopAll stops every thread (including threads created meanwhile) and waits
// until all are in a ptrace-stop. The stop window it opens lasts until
// ResumeAll or Detach; LastPause reports its length.
func (p *Process) StopAll(ctx context.Context) error {
	return p.run(func() error {
		if err := p.seizeAll(ctx); err != nil {
			return err
		}
		p.stopStart = time.Now()
		p.stopAll = true
		return p.waitUntil(ctx, func() (bool, error) {
			all := true
			for _, th := range p.threads {
				th.wantStop = true
				if !th.stopped {
					all = false
					if err := p.interrupt(th); err != nil {
						return false, err
					}
				}
			}
			return all, nil
		})
	})
}

// ResumeAll resumes every stopped thread, re-injecting pending signals, and
// ends the stop window opened by StopAll (when the first thread resumes: the
// time the tracer then spends resuming the others, often preempted by the
// threads it woke, is not a pause of the process).
func (p *Process) ResumeAll() error {
	return p.run(func() error {
		var err error
		p.endWindow()
		p.stopAll = false
		for _, th := range p.threads {
			th.wantStop, th.holdIf = false, nil
			if th.stopped {
				if e := p.cont(th); e != nil && err == nil {
					err = e
				}
			}
		}
		return err
	})
}

// Resume resumes thread tid (re-injecting a pending signal).
func (p *Process) Resume(tid int) error {
	return p.run(func() error {
		th, err := p.thread(tid)
		if err != nil {
			return err
		}
		th.wantStop, th.holdIf = false, nil
		if th.stopped {
			return p.cont(th)
		}
		return nil
	})
}

// ResumeHolding resumes thread tid like Resume, and holds the first stop
// it enters while hold reports true: the thread stays in that stop until
// Resume, ResumeAll or Detach (which then needs no stop of its own). For a
// thread that is about to stop by itself once something is done (a call's
// notification, ulp_abi.h ULP_REQ_NOTIFY, once the call's result is out):
// a stop before that (a signal sent to the thread meanwhile) is resumed
// as usual, so the thread goes on to finish. hold runs on the tracer
// thread, in the middle of handling the stop: it may read the target's
// memory, nothing more.
func (p *Process) ResumeHolding(tid int, hold func() bool) error {
	return p.run(func() error {
		th, err := p.thread(tid)
		if err != nil {
			return err
		}
		th.wantStop, th.holdIf = false, nil
		if th.stopped {
			if err := p.cont(th); err != nil {
				return err
			}
		}
		th.holdIf = hold
		return nil
	})
}

// Stopped reports whether thread tid is in a ptrace-stop (as of the last
// events handled: call it from a WaitFor condition).
func (p *Process) Stopped(tid int) bool {
	stopped := false
	p.run(func() error {
		if th, ok := p.threads[tid]; ok {
			stopped = th.stopped
		}
		return nil
	})
	return stopped
}

// LastPause returns the length of the last completed stop window (StopAll to
// ResumeAll or Detach).
func (p *Process) LastPause() time.Duration { return p.lastPause }

func (p *Process) endWindow() {
	if !p.stopStart.IsZero() {
		p.lastPause = time.Since(p.stopStart)
		p.stopStart = time.Time{}
	}
}

// Regs returns the registers of stopped thread tid.
func (p *Process) Regs(tid int) (Regs, error) {
	var regs Regs
	err := p.run(func() error {
		if err := p.checkStopped(tid); err != nil {
			return err
		}
		return getRegs(tid, &regs)
	})
	if err != nil {
		return Regs{}, fmt.Errorf("get registers of thread %d: %w", tid, err)
	}
	return regs, nil
}

// ThreadRegs is the registers of one stopped thread.
type ThreadRegs struct {
	TID  int
	Regs Regs
}

// AllRegs returns the registers of every thread, all stopped (after
// StopAll), in one request to the tracer thread. Threads that exited
// meanwhile are left out.
func (p *Process) AllRegs() ([]ThreadRegs, error) {
	var out []ThreadRegs
	err := p.run(func() error {
		if _, err := p.drain(); err != nil {
			return err
		}
		for _, th := range p.threads {
			if !th.stopped {
				return fmt.Errorf("thread %d: %w", th.tid, ErrNotStopped)
			}
			tr := ThreadRegs{TID: th.tid}
			if err := getRegs(th.tid, &tr.Regs); err != nil {
				if errors.Is(err, unix.ESRCH) {
					continue // exiting
				}
				return fmt.Errorf("get registers of thread %d: %w", th.tid, err)
			}
			out = append(out, tr)
		}
		return nil
	})
	slices.SortFunc(out, func(a, b ThreadRegs) int { return a.TID - b.TID })
	return out, err
}

// SetRegs sets the registers of stopped thread tid.
func (p *Process) SetRegs(tid int, regs Regs) error {
	err := p.run(func() error {
		if err := p.checkStopped(tid); err != nil {
			return err
		}
		return setRegs(tid, &regs)
	})
	if err != nil {
		return fmt.Errorf("set registers of thread %d: %w", tid, err)
	}
	return nil
}

// Detach releases the process, which stops nothing for long: stopped
// threads are detached with their pending signals (which resumes them), and
// running ones, with a tracer reused across processes, are stopped one at a
// time and detached likewise. With a tracer of its own, or when a thread
// does not stop within detachWait or the process exited while held, the
// tracer thread is ended instead, which makes the kernel detach every thread
// still attached (including any that a call interrupted but that has not
// reported its stop). Detach is idempotent, needs no context and is safe on
// every error path; when it returns, no thread of the process is traced.
func (p *Process) Detach() error {
	first, clean := false, false
	err := p.run(func() error {
		first = true
		p.detached = true
		var err error
		clean, err = p.detachAll(!p.own)
		return err
	})
	if !first {
		return nil
	}
	if p.own {
		p.owner.Close()
	} else {
		p.owner.release(p.tr, clean)
	}
	if p.mem != nil {
		p.mem.Close()
	}
	p.log.Debug("detached", "pause", p.lastPause, "clean", clean)
	return err
}

// detachWait bounds the wait of Detach for running threads to stop before
// it ends the tracer thread instead.
const detachWait = 100 * time.Millisecond

// detachAll detaches every stopped thread and, with stopRunning, stops and
// detaches the running ones. It reports whether no thread is left attached
// nor any exit left unreaped, so that the tracer thread can be reused.
func (p *Process) detachAll(stopRunning bool) (bool, error) {
	p.stopAll = true // stops that arrive now are held for their detach
	var err error
	start := time.Now()
	for {
		if _, e := p.drain(); e != nil {
			return false, e
		}
		if p.exited {
			return false, err // its threads' exits may not all be reaped
		}
		running := 0
		for tid, th := range p.threads {
			if !th.stopped {
				running++
				if stopRunning {
					th.wantStop = true
					if e := p.interrupt(th); e != nil {
						return false, e
					}
				}
				continue
			}
			p.endWindow() // the first thread resumes
			e := ptrace(unix.PTRACE_DETACH, tid, 0, uintptr(th.sig))
			if e != nil {
				// ESRCH: it died meanwhile and its exit is not reaped.
				if !errors.Is(e, unix.ESRCH) && err == nil {
					err = fmt.Errorf("detach thread %d: %w", tid, e)
				}
				return false, err
			}
			delete(p.threads, tid)
		}
		p.endWindow()
		if running == 0 {
			return err == nil, err
		}
		if !stopRunning || time.Since(start) > detachWait {
			return false, err
		}
		if time.Since(start) > 5*time.Millisecond {
			n := len(p.threads)
			if p.reapZombies(); len(p.threads) < n {
				return false, err // a zombie stays attached until the thread ends
			}
		}
		p.sleep(detachWait - time.Since(start))
	}
}

// thread returns the thread with id tid.
func (p *Process) thread(tid int) (*thread, error) {
	if p.exited {
		return nil, fmt.Errorf("pid %d: %w", p.pid, ErrExited)
	}
	th, ok := p.threads[tid]
	if !ok {
		return nil, fmt.Errorf("thread %d: %w", tid, ErrThreadExited)
	}
	return th, nil
}

// checkStopped fails unless tid is a thread of p that is stopped.
func (p *Process) checkStopped(tid int) error {
	th, err := p.thread(tid)
	if err != nil {
		return err
	}
	if !th.stopped {
		return ErrNotStopped
	}
	return nil
}

// interrupt sends PTRACE_INTERRUPT once per pending stop.
func (p *Process) interrupt(th *thread) error {
	if th.stopped || th.interrupted {
		return nil
	}
	err := ptrace(unix.PTRACE_INTERRUPT, th.tid, 0, 0)
	if errors.Is(err, unix.ESRCH) {
		p.forget(th.tid)
		return nil
	}
	if err != nil {
		return fmt.Errorf("interrupt thread %d: %w", th.tid, err)
	}
	th.interrupted = true
	return nil
}

// cont resumes a stopped thread the way its stop requires.
func (p *Process) cont(th *thread) error {
	var err error
	switch th.kind {
	case stopGroup:
		// Keep the job-control stop: the thread stays stopped for its
		// process group but we no longer hold it.
		err = ptrace(unix.PTRACE_LISTEN, th.tid, 0, 0)
	default:
		err = ptrace(unix.PTRACE_CONT, th.tid, 0, uintptr(th.sig))
	}
	th.stopped, th.sig, th.kind = false, 0, 0
	if errors.Is(err, unix.ESRCH) {
		return nil // exiting; its exit is reported by wait4
	}
	if err != nil {
		return fmt.Errorf("resume thread %d: %w", th.tid, err)
	}
	return nil
}

// forget drops a thread that exited.
func (p *Process) forget(tid int) {
	delete(p.threads, tid)
	if len(p.threads) == 0 {
		p.exited = true
	}
}

// drain handles every pending wait4 event of our tracees and reports how
// many there were. It never blocks.
//
// It waits for each known thread by its id, never with -1: a program that
// started the target is its real parent, and when the tracer is a thread of
// that same program the kernel lets the forking thread collect the
// target's ptrace stops too (the child is not "ptrace-reparented"). Waiting
// by id keeps every tracer to its own events. New threads are learnt from
// their creator's PTRACE_EVENT_CLONE stop.
func (p *Process) drain() (int, error) {
	n := 0
	for {
		tids := make([]int, 0, len(p.threads))
		for tid := range p.threads {
			tids = append(tids, tid)
		}
		known := len(p.threads)
		for _, tid := range tids {
			for {
				var ws unix.WaitStatus
				wpid, err := unix.Wait4(tid, &ws, unix.WALL|unix.WNOTHREAD|unix.WNOHANG, nil)
				if errors.Is(err, unix.EINTR) {
					continue
				}
				if errors.Is(err, unix.ECHILD) {
					// Not (or no longer) our tracee: it exited and was
					// reaped, or it was never attached.
					if tid == p.pid {
						p.exited = true
						p.threads = make(map[int]*thread)
						return n, nil
					}
					p.forget(tid)
					break
				}
				if err != nil {
					return n, fmt.Errorf("wait4 %d: %w", tid, err)
				}
				if wpid == 0 {
					break
				}
				n++
				p.handle(wpid, ws)
				if _, ok := p.threads[tid]; !ok {
					break
				}
			}
			if p.exited {
				return n, nil
			}
		}
		if len(p.threads) <= known {
			return n, nil
		}
		// A clone event added threads: collect their first stops too.
	}
}

// handle applies one wait4 status.
func (p *Process) handle(tid int, ws unix.WaitStatus) {
	if ws.Exited() || ws.Signaled() {
		p.log.Debug("thread exited", "tid", tid, "status", uint32(ws))
		if ws.Signaled() {
			p.killedBy.CompareAndSwap(0, int32(ws.Signal()))
		}
		if tid == p.pid {
			p.exited = true
			p.threads = make(map[int]*thread)
			return
		}
		p.forget(tid)
		return
	}
	if !ws.Stopped() {
		return
	}
	th, ok := p.threads[tid]
	if !ok {
		// A new thread (PTRACE_O_TRACECLONE) reporting its first stop
		// before its parent's clone event.
		th = &thread{tid: tid, wantStop: p.stopAll}
		p.threads[tid] = th
	}
	sig := int(ws.StopSignal())
	event := int(ws>>16) & 0xff
	th.stopped = true
	th.sig = 0
	switch event {
	case 0:
		th.kind, th.sig = stopSignal, sig
	case unix.PTRACE_EVENT_STOP:
		switch syscall.Signal(sig) {
		case unix.SIGSTOP, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU:
			th.kind = stopGroup
		default:
			th.kind = stopInterrupt
			th.interrupted = false
		}
	case unix.PTRACE_EVENT_CLONE:
		th.kind = stopEvent
		if msg, err := unix.PtraceGetEventMsg(tid); err == nil {
			if _, ok := p.threads[int(msg)]; !ok {
				p.threads[int(msg)] = &thread{tid: int(msg), wantStop: p.stopAll}
			}
		}
	default:
		th.kind = stopEvent
	}
	if th.holdIf != nil && th.holdIf() {
		th.wantStop, th.holdIf = true, nil
	}
	p.log.Debug("thread stopped", "tid", tid, "kind", th.kind, "signal", sig, "event", event, "hold", th.wantStop)
	if p.stopAll {
		th.wantStop = true
	}
	if !th.wantStop {
		p.cont(th)
	}
}

// KilledBy returns the signal that killed a thread of the process while it
// was held (wait4 reported it), or 0.
func (p *Process) KilledBy() syscall.Signal { return syscall.Signal(p.killedBy.Load()) }

// WaitFor services ptrace events (as Poll does) until cond reports true or
// an error, ctx ends or the process exits. cond typically reads target
// memory with process_vm_readv; it runs on the tracer thread.
func (p *Process) WaitFor(ctx context.Context, cond func() (bool, error)) error {
	return p.run(func() error { return p.waitUntil(ctx, cond) })
}

// maxSleep bounds a wait for a ptrace event: the condition of waitUntil
// may change without one (memory the target writes), and a thread that
// becomes a zombie never stops.
const maxSleep = 2 * time.Millisecond

// sleep blocks until a SIGCHLD arrives (a tracee stopped or exited: the
// kernel sends one to the tracer for every such event, see ptrace(2)), at
// most d and at most maxSleep. Nothing is polled meanwhile: the tracer
// thread sleeps in the Go scheduler and leaves its CPU to the threads it
// waits for. A SIGCHLD that arrived since the last drain is kept by the
// channel (buffer of one), so no event is lost between a drain and the
// sleep.
//
// It sleeps in rt_sigtimedwait(SIGCHLD) on the tracer thread itself: the
// kernel sends a tracee's SIGCHLD to its tracer thread when that thread
// waits for it, so the wake-up goes straight to the thread that calls
// wait4, instead of through the Go runtime's signal handler, os/signal's
// goroutine and a channel (three threads to schedule, each a delay on a busy
// machine). A SIGCHLD that Go's handler took meanwhile (the tracer thread
// was running) is found on the channel first.
func (p *Process) sleep(d time.Duration) {
	d = min(max(d, 0), maxSleep)
	select {
	case <-p.tr.sigchld:
		return
	default:
	}
	set := uint64(1) << (unix.SIGCHLD - 1)
	ts := unix.NsecToTimespec(d.Nanoseconds())
	// Any result will do: a SIGCHLD, the timeout, or another signal (EINTR).
	unix.Syscall6(unix.SYS_RT_SIGTIMEDWAIT, uintptr(unsafe.Pointer(&set)), 0, uintptr(unsafe.Pointer(&ts)), 8, 0, 0)
}

// waitUntil services wait4 events until cond holds, ctx ends or the process
// exits, sleeping between rounds until the next SIGCHLD (sleep). cond is
// tried again at least every maxSleep: the runtime makes the thread of a
// call stop once its result is published (ulp_abi.h, ULP_REQ_NOTIFY), and
// the timeout covers a runtime that could not. Threads that became zombies
// (they never stop) are dropped from the set while waiting.
func (p *Process) waitUntil(ctx context.Context, cond func() (bool, error)) error {
	lastReap := time.Now()
	for {
		n, err := p.drain()
		if err != nil {
			return err
		}
		if p.exited {
			return fmt.Errorf("pid %d: %w", p.pid, ErrExited)
		}
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("wait for pid %d: %w", p.pid, err)
		}
		if n > 0 {
			continue
		}
		if now := time.Now(); now.Sub(lastReap) > 5*time.Millisecond {
			p.reapZombies()
			lastReap = now
		}
		p.sleep(maxSleep)
	}
}

// reapZombies forgets running threads that have exited but whose exit the
// kernel does not report yet (a thread-group leader that called
// pthread_exit stays a zombie until the whole group exits; it never stops).
func (p *Process) reapZombies() {
	for tid, th := range p.threads {
		if th.stopped {
			continue
		}
		if taskGone(tid) {
			p.forget(tid)
		}
	}
}

// taskGone reports whether a thread has exited (its status is gone, or it
// is a zombie).
func taskGone(tid int) bool {
	st, err := procfs.ReadStatus(tid)
	if err != nil {
		return errors.Is(err, procfs.ErrNoProcess)
	}
	return st.Dead()
}
