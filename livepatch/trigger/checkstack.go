package trigger

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"ulp/livepatch/container"
	"ulp/livepatch/elfsym"
	"ulp/livepatch/ledger"
	"ulp/livepatch/procfs"
	"ulp/livepatch/ptrace"
)

// maxStackScan bounds the bytes of one thread's stack that --check-stack
// reads, from its stack pointer up.
const maxStackScan = 1 << 20

// codeRange is a function being replaced: a thread executing it, or a
// return address into it on a stack, blocks the switch under CheckStack.
type codeRange struct {
	name   string
	lo, hi uint64
}

// heldError reports a thread that held a function being replaced when the
// trigger's time ran out.
type heldError struct {
	tid  int
	addr uint64
	fn   string
	ip   bool // the thread was executing it, not returning into it
}

func (e *heldError) Error() string {
	how := "holds a return address"
	if e.ip {
		how = "is executing"
	}
	return fmt.Sprintf("--check-stack: thread %d %s %#x inside %s, being replaced; retried until the timeout", e.tid, how, e.addr, e.fn)
}

// replacedRanges returns the functions that the change from l to plan
// replaces: the old functions of the new patch (apply, replace) and the
// replacement functions of every patch it removes (revert, revert-all,
// replace), with their sizes from the target's and the containers'
// symbol tables.
func (r *run) replacedRanges(l *ledger.Ledger, plan *ledger.Plan) ([]codeRange, error) {
	var rs []codeRange
	if r.spec != nil && r.spec.Kind == container.Apply {
		obj, err := r.tp.Symbols(r.obj)
		if err != nil {
			return nil, err
		}
		defer obj.Close()
		for _, f := range r.spec.Funcs {
			s, err := obj.LookupAt(f.Old, f.OldOffset, elfsym.TypeFunc)
			if err != nil {
				return nil, err
			}
			rs = append(rs, codeRange{f.Old, r.obj.Bias + f.OldOffset, r.obj.Bias + f.OldOffset + max(s.Size, 1)})
		}
	}
	for _, p := range l.Patches {
		if plan.Ledger.Patch(p.ID) != nil {
			continue
		}
		c, err := container.Open(p.Container)
		if err != nil {
			return nil, fmt.Errorf("read container of patch %s: %w", p.ID.String()[:16], err)
		}
		obj, err := elfsym.OpenFile(p.Container)
		if err != nil {
			return nil, err
		}
		defer obj.Close()
		if len(c.Apply.Funcs) != len(p.Redirects) {
			return nil, fmt.Errorf("container %s does not match patch %s", p.Container, p.ID.String()[:16])
		}
		for i, f := range c.Apply.Funcs {
			s, err := obj.LookupAt(f.New, f.NewOffset, elfsym.TypeFunc)
			if err != nil {
				return nil, err
			}
			at := trampTarget(r.pid, p.Redirects[i].New)
			rs = append(rs, codeRange{f.New, at, at + max(s.Size, 1)})
		}
	}
	return rs, nil
}

// stackHolder returns a stopped thread that executes one of rs or whose
// stack (up to maxStackScan bytes above its stack pointer, within its
// mapping) holds a word pointing into one of them, or nil. The scan is
// conservative: any stack word equal to such an address counts.
func (r *run) stackHolder(rs []codeRange) (*heldError, error) {
	if len(rs) == 0 {
		return nil, nil
	}
	in := func(a uint64) *codeRange {
		i := slices.IndexFunc(rs, func(c codeRange) bool { return a >= c.lo && a < c.hi })
		if i < 0 {
			return nil
		}
		return &rs[i]
	}
	maps, err := procfs.Maps(r.pid)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, maxStackScan)
	for _, th := range r.proc.Threads() {
		regs, err := r.proc.Regs(th.TID)
		if errors.Is(err, ptrace.ErrThreadExited) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if c := in(regs.Rip); c != nil {
			return &heldError{tid: th.TID, addr: regs.Rip, fn: c.name, ip: true}, nil
		}
		sp := regs.Rsp &^ 7
		i := slices.IndexFunc(maps, func(m procfs.Mapping) bool { return m.Contains(sp) })
		if i < 0 {
			continue
		}
		b := buf[:min(maps[i].End-sp, maxStackScan)]
		if err := procfs.ReadMem(r.pid, sp, b); err != nil {
			return nil, fmt.Errorf("read stack of thread %d: %w", th.TID, err)
		}
		for o := 0; o+8 <= len(b); o += 8 {
			if a := binary.LittleEndian.Uint64(b[o:]); a != 0 {
				if c := in(a); c != nil {
					return &heldError{tid: th.TID, addr: a, fn: c.name}, nil
				}
			}
		}
	}
	return nil, nil
}

// checkStackMargin is the time left before the trigger's deadline at which
// --check-stack stops retrying and reports the holder (the next stop could
// not finish in time).
const checkStackMargin = 100 * time.Millisecond

func outOfTime(ctx context.Context) bool {
	dl, ok := ctx.Deadline()
	return ctx.Err() != nil || ok && time.Until(dl) < checkStackMargin
}

// checkStack is the --check-stack loop body of writeCode: with every thread
// stopped, it reports whether to resume and retry (a thread holds a
// function being replaced and time remains), or the error to end with.
func (r *run) checkStack(ctx context.Context, plan *ledger.Plan) (retry bool, err error) {
	if !r.o.CheckStack {
		return false, nil
	}
	if r.ranges == nil {
		l, err := r.tp.ReadLedger(ctx)
		if err != nil {
			return false, failed("read ledger: %w", err)
		}
		if r.ranges, err = r.replacedRanges(l, plan); err != nil {
			return false, failed("--check-stack: %w", err)
		}
		r.ranges = append(r.ranges, codeRange{}) // computed; the empty range matches nothing
	}
	h, err := r.stackHolder(r.ranges)
	switch {
	case err != nil:
		return false, failed("--check-stack: %w", err)
	case h == nil:
		return false, nil
	case outOfTime(ctx):
		return false, failed("%w", h)
	}
	r.log.Debug("check-stack: retrying", "why", h.Error())
	return true, nil
}
