package trigger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"ulp/livepatch/abi"
	"ulp/livepatch/ledger"
	"ulp/livepatch/procfs"
	"ulp/livepatch/report"
)

// Writing code while every thread runs (docs/security.md, "Writing code
// without stopping the threads").
//
// A plan of the pad mechanism, on a function whose entry holds the 2-byte
// NOP `66 90` that `ulp post` writes, needs no thread stopped. Its writes
// are of two kinds:
//
//   - the 14 bytes of a fresh pad (all NOPs), before an apply arms the
//     entry: no thread can be executing them or return into them, because
//     nothing transfers control there (they lie after the previous
//     function's last instruction, which never falls through, and before
//     the entry, which does not jump there yet). The agent writes them
//     through /proc/PID/mem, in any number of pieces;
//   - the bytes threads may be executing or loading at any moment: the 2
//     entry bytes (`66 90` to `eb f0` and back: one instruction before and
//     after, so no thread can be between them) and the 8-byte address slot
//     of a pad already live (read by the single load of `jmp *0(%rip)`).
//     The runtime stores each of them with one store instruction (an
//     aligned 16-bit store; a 64-bit store within one cache line), which
//     x86-64 makes single-copy atomic: an instruction fetch or a load sees
//     the old bytes or the new ones, never a mix, so a thread entering the
//     function at that moment runs either the old code or the new one.
//     /proc/PID/mem cannot give that guarantee: the kernel copies with
//     memcpy, which may store byte by byte.
//
// Anything else (the entry mechanism's 5 bytes over the first
// instructions, where a thread may be stopped between two of them; a pad
// whose entry is two 1-byte NOPs `90 90`; --check-stack) is written with
// every thread stopped (writeCode), as is everything when the runtime
// cannot make the code writable (a security policy refusing writable code:
// ULP_EPROT).

// jmpIndirect is the first 6 bytes of a live pad, `jmp *0(%rip)`.
var jmpIndirect = ledger.PadBytes(0)[:6]

// liveSplit sorts the writes of plan into direct ones (fresh pads, written
// through /proc/PID/mem) and atomic ones (made by the runtime, one store
// each), in plan order, leaving out bytes that hold their new value
// already. ok is false when some write can be made only with every thread
// stopped. read reads the process's memory.
func liveSplit(writes []ledger.Write, read func(addr uint64, b []byte) error) (direct []ledger.Write, atomic []abi.Write, ok bool, err error) {
	for _, w := range writes {
		cur := make([]byte, len(w.Data))
		if err := read(w.Addr, cur); err != nil {
			return nil, nil, false, err
		}
		switch {
		case bytes.Equal(cur, w.Data):
		case len(w.Data) == 14 && bytes.Equal(cur, bytes.Repeat([]byte{0x90}, 14)):
			direct = append(direct, w)
		case len(w.Data) == 14 && bytes.HasPrefix(cur, jmpIndirect) && bytes.HasPrefix(w.Data, jmpIndirect):
			atomic = append(atomic, newStore(w.Addr+6, cur[6:], w.Data[6:]))
		case len(w.Data) == 8:
			// An address slot: the 6 bytes before it must be the pad's jump.
			jmp := make([]byte, 6)
			if err := read(w.Addr-6, jmp); err != nil {
				return nil, nil, false, err
			}
			if !bytes.Equal(jmp, jmpIndirect) {
				return nil, nil, false, nil
			}
			atomic = append(atomic, newStore(w.Addr, cur, w.Data))
		case len(w.Data) == 2 && oneInsn2(cur) && oneInsn2(w.Data):
			atomic = append(atomic, newStore(w.Addr, cur, w.Data))
		default:
			return nil, nil, false, nil
		}
	}
	for _, a := range atomic {
		if a.Len == 2 && a.Addr%2 != 0 || a.Len == 8 && a.Addr/64 != (a.Addr+7)/64 {
			return nil, nil, false, nil // not one store: every thread stopped
		}
	}
	return direct, atomic, true, nil
}

// oneInsn2 reports whether b (2 bytes) is one instruction that a pad entry
// holds: the NOP `66 90` or a short jump `eb rel8`.
func oneInsn2(b []byte) bool {
	return b[0] == 0x66 && b[1] == 0x90 || b[0] == 0xeb
}

func newStore(addr uint64, old, data []byte) abi.Write {
	w := abi.Write{Addr: addr, Len: uint32(len(data))}
	copy(w.Old[:], old)
	copy(w.New[:], data)
	return w
}

// mappingOf returns the mapping holding addr and its PROT_* bits.
func mappingOf(maps []procfs.Mapping, addr uint64) (procfs.Mapping, uint32, bool) {
	for _, m := range maps {
		if m.Contains(addr) {
			var p uint32
			if m.Readable() {
				p |= unix.PROT_READ
			}
			if m.Writable() {
				p |= unix.PROT_WRITE
			}
			if m.Executable() {
				p |= unix.PROT_EXEC
			}
			return m, p, true
		}
	}
	return procfs.Mapping{}, 0, false
}

// writeLive makes plan's writes, then the ledger (commit), without stopping
// any thread, when the plan allows it (see above) and the process has more
// than one thread. handled is false when
// the writes are to be made with every thread stopped instead (writeCode):
// nothing was written then but fresh pads, which writeCode writes again.
func (r *run) writeLive(ctx context.Context, plan *ledger.Plan, commit func() error) (handled bool, err error) {
	if r.o.CheckStack || testHookNoLiveWrite {
		return false, nil
	}
	// A process of one thread is stopped as cheaply as it is borrowed (and
	// its detach then needs no stop of its own): stopping it costs less
	// than a second call.
	if st, err := r.status(); err != nil || st.Threads <= 1 {
		return false, nil
	}
	tw := time.Now()
	direct, atomic, ok, err := liveSplit(plan.Writes, func(addr uint64, b []byte) error { return procfs.ReadMem(r.pid, addr, b) })
	if err != nil {
		return true, failed("read code: %w", err)
	}
	if !ok {
		return false, nil
	}
	// A fresh map: the runtime gives each mapping back the protection read
	// here, so it must be the mapping's current one, bounds included.
	maps, err := procfs.Maps(r.pid)
	if err != nil {
		return true, failed("read memory map: %w", err)
	}
	for i := range atomic {
		m, prot, found := mappingOf(maps, atomic[i].Addr)
		if !found || atomic[i].Addr+uint64(atomic[i].Len) > m.End {
			return false, nil
		}
		atomic[i].Prot, atomic[i].MapStart, atomic[i].MapEnd = prot, m.Start, m.End
	}
	for _, w := range direct {
		if err := r.proc.Write(w.Addr, w.Data); err != nil {
			return true, failed("write code: %w", err)
		}
	}
	for done := 0; done < len(atomic); {
		n := min(len(atomic)-done, abi.WritesMax)
		req := abi.NewRequest(0, abi.OpWrite)
		if err := req.SetWrites(atomic[done : done+n]); err != nil {
			return true, failed("write code: %w", err)
		}
		c, err := call(ctx, r.proc, r.rt, req)
		var ce *callError
		switch {
		case errors.As(err, &ce) && (ce.Result == abi.EProt || ce.Result == abi.EInval && done == 0):
			// Every thread stopped then, for what is left (and the rest
			// again: the same bytes). EINVAL: a runtime older than
			// ULP_OP_WRITE (it checks every write before the first store).
			r.log.Debug("the runtime cannot make the writes: writing with every thread stopped", "result", ce.Result, "msg", ce.Msg)
			return false, nil
		case err != nil:
			made := done
			if c != nil {
				made += int(c.Out[0])
			}
			return true, &outcome{result: report.Error, reason: fmt.Sprintf("write code: %v", err), inconsistent: made > 0, err: err}
		}
		done += n
	}
	if err := commit(); err != nil {
		return true, &outcome{result: report.Error, reason: "write ledger: " + err.Error(), inconsistent: true, err: err}
	}
	r.rep.Timings.WriteUS = time.Since(tw).Microseconds()
	return true, nil
}

// testHookNoLiveWrite makes every write go through the stop of every thread
// (tests of that path).
var testHookNoLiveWrite bool
