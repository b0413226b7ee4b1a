package trigger

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"ulp/livepatch/abi"
	"ulp/livepatch/procfs"
	"ulp/livepatch/ptrace"
)

// Kernel return values of an interrupted system call that the kernel would
// restart (include/linux/errno.h), and __NR_restart_syscall for x86_64
// (arch/x86/entry/syscalls/syscall_64.tbl).
const (
	errRestartSys          = -512
	errRestartNoIntr       = -513
	errRestartNoHand       = -514
	errRestartRestartBlock = -516
	nrRestartSyscall       = 219
)

// redZone is the x86_64 System V red zone below %rsp that leaf code may use.
const redZone = 128

// stackNeed is the stack a call needs below the request: the stub's XSAVE
// area (up to about 11 KiB with AVX-512) and the runtime's handler with
// dlopen inside it. A thread with less room below its %rsp (a small thread
// stack, a signal alternate stack) is not hijacked.
const stackNeed = 64 << 10

// runtimeInfo is what the agent knows about the runtime in one process.
type runtimeInfo struct {
	ABI       uint64 // address of ulp_abi
	Entry     uint64 // ulp_abi.entry, the hijack entry stub
	TextStart uint64 // the runtime's executable mapping
	TextEnd   uint64
	// Maps is the memory map read when the process was opened, where
	// stackRoom finds the main thread's stack; nil: read it each time.
	Maps []procfs.Mapping
}

// callError is a call the runtime answered with a non-zero result.
type callError struct {
	Op     abi.Op
	Result abi.Result
	Msg    string
}

func (e *callError) Error() string {
	if e.Msg != "" {
		return fmt.Sprintf("%v: %v: %s", e.Op, e.Result, e.Msg)
	}
	return fmt.Sprintf("%v: %v", e.Op, e.Result)
}

// errNoThread: no thread could be hijacked in this round.
var errNoThread = errors.New("no thread available for the call")

var callID atomic.Uint64

func init() {
	callID.Store(uint64(time.Now().UnixNano()))
}

// call makes the runtime in p run req on one of p's threads and returns its
// result. The thread is interrupted, given a request and its own resume
// frame on its stack, and resumed at the entry stub; it returns to its own
// context by itself. The call's completion is read from ulp_abi.call with
// process_vm_readv while the process runs. Threads answering EAGAIN (inside
// malloc or the loader) are skipped for another; when every thread was
// tried, call returns the EAGAIN callError (or errNoThread when no thread
// could take it).
//
// The thread stops once DONE is out (ULP_REQ_NOTIFY), which wakes waitDone
// at once, and is held in that stop: the next call resumes it, and a stop
// of every thread or the detach that follows need not stop it again (the
// signal it stopped with is delivered when it resumes, to no effect).
func call(ctx context.Context, p *ptrace.Process, rt runtimeInfo, req *abi.Request) (*abi.Call, error) {
	req.ID = callID.Add(1)
	req.Flags |= abi.ReqNotify
	if err := p.ResumeAll(); err != nil { // a thread held by the last call
		return nil, err
	}
	if err := waitIdle(ctx, p, rt); err != nil {
		return nil, err
	}
	tried := map[int]bool{}
	var last error = errNoThread
	for {
		// A thread that answered EAGAIN is inside the loader or malloc,
		// holding their locks, and held in its stop: let it go on before
		// another thread is asked to take those locks.
		if err := p.ResumeAll(); err != nil {
			return nil, err
		}
		tid, notify, err := pickThread(p, tried)
		if err != nil {
			return nil, last
		}
		tried[tid] = true
		res, err := callOn(ctx, p, rt, tid, notify, req)
		p.Log().Debug("call", "op", req.Op, "id", req.ID, "tid", tid, "err", err)
		if err != nil {
			var ce *callError
			if errors.As(err, &ce) && ce.Result == abi.EAgain {
				last = err
				req.ID = callID.Add(1)
				continue
			}
			if errors.Is(err, errSkipThread) {
				continue
			}
			return nil, err
		}
		return res, nil
	}
}

// errSkipThread: the chosen thread cannot take the call now.
var errSkipThread = errors.New("thread cannot take the call")

// waitIdle waits while another call is in flight (a previous agent may have
// died after starting one).
func waitIdle(ctx context.Context, p *ptrace.Process, rt runtimeInfo) error {
	err := p.WaitFor(ctx, func() (bool, error) {
		c, err := readCall(p.PID(), rt)
		if err != nil {
			return false, err
		}
		return c.State != abi.CallRunning, nil
	})
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("another call is running in the process: %w", err)
	}
	return err
}

// pickThread chooses a thread not yet tried: a sleeping one first (its
// interruption disturbs no work), the main thread before the others (it is
// the one the agent holds already), else a running one; never a thread in
// uninterruptible sleep. It reads the threads' states in that order and
// stops at the first sleeping one, so that a process of a thousand threads
// does not cost a thousand reads. notify reports whether the runtime will
// be able to notify the call's end on that thread (notifies).
func pickThread(p *ptrace.Process, tried map[int]bool) (tid int, notify bool, err error) {
	tids, err := procfs.Tasks(p.PID())
	if err != nil {
		return 0, false, errNoThread
	}
	if i := slices.Index(tids, p.PID()); i > 0 {
		tids[0], tids[i] = tids[i], tids[0]
	}
	running, runningNotify := 0, false
	for _, tid := range tids {
		if tried[tid] {
			continue
		}
		st, err := procfs.ReadStatus(tid)
		if err != nil {
			continue
		}
		switch st.State {
		case 'S':
			return tid, notifies(st), nil
		case 'D', 'Z', 'X':
			continue
		}
		if running == 0 {
			running, runningNotify = tid, notifies(st)
		}
	}
	if running == 0 {
		return 0, false, errNoThread
	}
	return running, runningNotify, nil
}

// notifies reports whether the runtime can notify the end of a call on the
// thread of status st: one of the signals it may send (ulp_abi.h,
// ULP_REQ_NOTIFY) is neither blocked by the thread nor caught.
func notifies(st *procfs.Status) bool {
	for _, sig := range []uint{28, 23, 17} { // SIGWINCH, SIGURG, SIGCHLD
		bit := uint64(1) << (sig - 1)
		if st.SigBlk&bit == 0 && st.SigCgt&bit == 0 {
			return true
		}
	}
	return false
}

// callOn runs req on thread tid.
func callOn(ctx context.Context, p *ptrace.Process, rt runtimeInfo, tid int, notify bool, req *abi.Request) (*abi.Call, error) {
	if err := p.SeizeThread(tid); err != nil {
		if errors.Is(err, ptrace.ErrExited) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", errSkipThread, err)
	}
	if err := stopForCall(ctx, p, tid); err != nil {
		p.Resume(tid) // let a late stop go on
		p.Log().Debug("thread did not stop for the call", "tid", tid, "err", err)
		if errors.Is(err, ptrace.ErrExited) || ctx.Err() != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", errSkipThread, err)
	}
	regs, err := p.Regs(tid)
	if err != nil {
		p.Resume(tid)
		return nil, fmt.Errorf("%w: %w", errSkipThread, err)
	}
	if regs.Rip >= rt.TextStart && regs.Rip < rt.TextEnd {
		p.Resume(tid)
		return nil, errSkipThread
	}
	frame, hijack := buildFrame(regs, rt.Entry)
	if !stackRoom(p.PID(), rt.Maps, regs.Rsp, hijack.Rsp) {
		p.Resume(tid)
		p.Log().Debug("thread stack too small for the call", "tid", tid, "rsp", regs.Rsp)
		return nil, errSkipThread
	}
	req.GPR, req.Iret = frame.GPR, frame.Iret
	if err := p.Write(hijack.Rdi, req.Marshal()); err != nil {
		p.Resume(tid)
		return nil, fmt.Errorf("%w: write request: %w", errSkipThread, err)
	}
	if err := p.SetRegs(tid, hijack); err != nil {
		p.Resume(tid)
		return nil, fmt.Errorf("%w: %w", errSkipThread, err)
	}
	resume := p.Resume
	if notify {
		// Hold the thread in the stop that notifies the call's end, and
		// in no stop before it.
		resume = func(tid int) error {
			return p.ResumeHolding(tid, func() bool {
				c, err := readCall(p.PID(), rt)
				return err == nil && c.State == abi.CallDone && c.ID == req.ID
			})
		}
	}
	if err := resume(tid); err != nil {
		return nil, err
	}
	return waitDone(ctx, p, rt, req, tid, notify)
}

// stackRoom reports whether the stack mapping holding rsp extends at least
// stackNeed bytes below low (the lowest address the request uses). The main
// thread's [stack] grows on demand and always qualifies: when maps, a
// recent read of the memory map, has rsp in [stack], no other read is
// needed (one read fewer for every process of a whole-host trigger; the
// main thread's stack is never replaced). Any other stack is looked up in a
// fresh read: a thread's stack may have been unmapped since, and another
// mapped there.
func stackRoom(pid int, maps []procfs.Mapping, rsp, low uint64) bool {
	for _, m := range maps {
		if m.Contains(rsp) && m.Path == "[stack]" && m.Writable() {
			return true
		}
	}
	maps, err := procfs.Maps(pid)
	if err != nil {
		return false
	}
	for _, m := range maps {
		if m.Contains(rsp) {
			return m.Writable() && (m.Path == "[stack]" || low >= m.Start+stackNeed)
		}
	}
	return false
}

// stopForCall interrupts thread tid and waits until it is in a stop that
// can take a call. A thread that stops for a signal instead (one sent
// before the interrupt: the late notification of the previous call, say)
// is resumed with that signal and interrupted again, a few times; a thread
// in a job-control stop is not (it would not run the call until SIGCONT).
func stopForCall(ctx context.Context, p *ptrace.Process, tid int) error {
	for try := 0; ; try++ {
		ictx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		err := p.Interrupt(ictx, tid)
		cancel()
		if err != nil {
			return err
		}
		sig, job := stopOf(p, tid)
		switch {
		case job:
			return errors.New("job-control stop")
		case sig == 0:
			return nil
		case try == 2:
			return fmt.Errorf("stops for signal %d", sig)
		}
		if err := p.Resume(tid); err != nil {
			return err
		}
	}
}

// stopOf returns how stopped thread tid stopped: the signal of a
// signal-delivery stop (else 0), and whether it is a job-control stop.
func stopOf(p *ptrace.Process, tid int) (sig int, job bool) {
	for _, th := range p.Threads() {
		if th.TID == tid {
			return th.Signal, th.JobStop
		}
	}
	return 0, false
}

// buildFrame returns the resume frame of a thread stopped with regs (its
// registers, with an interrupted restartable system call rewound so that it
// is restarted), and the registers that send it into the entry stub with the
// request below its red zone.
func buildFrame(regs ptrace.Regs, entry uint64) (abi.Request, ptrace.Regs) {
	var f abi.Request
	rax, rip := regs.Rax, regs.Rip
	if int64(regs.Orig_rax) >= 0 {
		switch int64(regs.Rax) {
		case errRestartSys, errRestartNoIntr, errRestartNoHand:
			rax, rip = regs.Orig_rax, regs.Rip-2
		case errRestartRestartBlock:
			rax, rip = nrRestartSyscall, regs.Rip-2
		}
	}
	f.GPR = [abi.NumGPR]uint64{
		abi.R15: regs.R15, abi.R14: regs.R14, abi.R13: regs.R13, abi.R12: regs.R12,
		abi.RBP: regs.Rbp, abi.RBX: regs.Rbx, abi.R11: regs.R11, abi.R10: regs.R10,
		abi.R9: regs.R9, abi.R8: regs.R8, abi.RAX: rax, abi.RCX: regs.Rcx,
		abi.RDX: regs.Rdx, abi.RSI: regs.Rsi, abi.RDI: regs.Rdi,
	}
	f.Iret = [abi.NumIret]uint64{
		abi.IretRIP: rip, abi.IretCS: regs.Cs, abi.IretRFLAGS: regs.Eflags,
		abi.IretRSP: regs.Rsp, abi.IretSS: regs.Ss,
	}
	reqAddr := (regs.Rsp - redZone - abi.RequestSize) &^ 63
	h := regs
	h.Rip = entry
	h.Rdi = reqAddr
	h.Rsp = reqAddr - 64
	h.Orig_rax = ^uint64(0) // no syscall restart at the stub
	return f, h
}

// notifyWait bounds the wait for the stop that notifies a call's end once
// its result is out: the thread may have blocked the signals since the
// agent read its status.
const notifyWait = 5 * time.Millisecond

// readCall reads ulp_abi.call.
func readCall(pid int, rt runtimeInfo) (*abi.Call, error) {
	b := make([]byte, abi.CallSize)
	if err := procfs.ReadMem(pid, rt.ABI+abi.OffCall, b); err != nil {
		return nil, err
	}
	return abi.DecodeCall(b)
}

// waitDone polls ulp_abi.call until the runtime reports req done, servicing
// ptrace events meanwhile, then sets the slot back to IDLE.
//
// When the thread is to notify the end (notify), it also waits, for at most
// notifyWait after DONE, for the thread's stop, which is then held.
func waitDone(ctx context.Context, p *ptrace.Process, rt runtimeInfo, req *abi.Request, tid int, notify bool) (*abi.Call, error) {
	var c *abi.Call
	var done time.Time
	err := p.WaitFor(ctx, func() (bool, error) {
		var err error
		c, err = readCall(p.PID(), rt)
		if err != nil {
			return false, err
		}
		if c.State != abi.CallDone || c.ID != req.ID {
			return false, nil
		}
		if done.IsZero() {
			done = time.Now()
		}
		return !notify || p.Stopped(tid) || time.Since(done) > notifyWait, nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%v call %d did not finish: %w", req.Op, req.ID, err)
		}
		return nil, err
	}
	idle := binary.LittleEndian.AppendUint32(nil, uint32(abi.CallIdle))
	if err := p.Write(rt.ABI+abi.OffCallState, idle); err != nil {
		return nil, err
	}
	if c.Result != abi.OK {
		return c, &callError{Op: req.Op, Result: c.Result, Msg: abi.String(c.Msg[:])}
	}
	return c, nil
}
