package trigger

import (
	"bytes"
	"encoding/binary"
	"slices"

	"ulp/livepatch/container"
	"ulp/livepatch/insn"
	"ulp/livepatch/ledger"
	"ulp/livepatch/procfs"
	"ulp/livepatch/ptrace"
)

// checkMechanisms checks that every function of the new patch gets, in the
// process's code, the mechanism the packer recorded from the target file:
// a container made for a padded build must not fall back to overwriting
// an entry (the packer never decoded that function), nor the reverse.
func (r *run) checkMechanisms(plan *ledger.Plan) error {
	for _, f := range r.spec.Funcs {
		s := plan.Ledger.Stack(r.obj.Bias + f.OldOffset)
		if s == nil {
			continue
		}
		if s.Mechanism != f.Mechanism || s.EntryOffset != f.EntryOffset {
			return failed("function %s at %#x: the container was packed for the %v mechanism (entry+%d), the process's code takes %v (entry+%d)",
				f.Old, s.Addr, f.Mechanism, f.EntryOffset, s.Mechanism, s.EntryOffset)
		}
	}
	return nil
}

// maxSavedScan bounds the bytes above a stopped thread's stack pointer
// searched for a saved instruction pointer.
const maxSavedScan = 64 << 10

// unsafeStop reports whether a thread stopped with regs must be resumed
// and the stop retried before plan is written, because it would later
// resume inside bytes to be rewritten: it is stopped inside them, or its
// stack holds a word pointing inside them. Such a word is how a thread
// keeps the instruction pointer it will resume at when it runs a signal
// handler (the context sigreturn restores), or when a call borrowed it and
// it has not yet left the runtime (the iret frame of its ulp_request, which
// the runtime pops after publishing DONE). The scan is conservative: any
// such word counts.
//
// The bytes are the 5 of an entry jump or the 2 entry NOPs of a pad (90 90
// has a boundary in between).
func (r *run) unsafeStop(plan *ledger.Plan, regs ptrace.Regs) bool {
	if plan.Splits(regs.Rip) {
		return true
	}
	if !hasInnerBoundary(plan) {
		return false
	}
	held, err := r.savedInside(plan, regs.Rsp)
	if err != nil {
		r.log.Debug("scan stack for saved instruction pointers", "err", err)
		return true
	}
	return held
}

// hasInnerBoundary reports whether plan rewrites code in which a thread
// may have stopped between instructions, so that a saved instruction
// pointer can lie inside it: the 5 bytes of the entry mechanism (jump or
// original instructions), or a pad's entry NOPs 90 90 being replaced. The
// pad mechanism's other writes (the pad, the address slot, 66 90 and the
// short jump) hold no boundary a thread can be at, nor does a trampoline.
func hasInnerBoundary(plan *ledger.Plan) bool {
	for _, w := range plan.Writes {
		if len(w.Data) == insn.JumpLen {
			return true
		}
		for _, s := range plan.Ledger.Stacks {
			if s.Mechanism == container.MechPad && w.Addr == s.Addr+uint64(s.EntryOffset) && bytes.Equal(s.Orig, []byte{0x90, 0x90}) {
				return true
			}
		}
	}
	return false
}

// savedInside reports whether the stack above sp holds a word that plan
// would split.
func (r *run) savedInside(plan *ledger.Plan, sp uint64) (bool, error) {
	sp &^= 7
	find := func() int { return slices.IndexFunc(r.maps, func(m procfs.Mapping) bool { return m.Contains(sp) }) }
	i := find()
	if i < 0 {
		var err error
		if r.maps, err = procfs.Maps(r.pid); err != nil {
			return false, err
		}
		if i = find(); i < 0 {
			return false, nil // not a stack we can read
		}
	}
	b := make([]byte, min(r.maps[i].End-sp, maxSavedScan))
	if err := procfs.ReadMem(r.pid, sp, b); err != nil {
		return false, err
	}
	for o := 0; o+8 <= len(b); o += 8 {
		if plan.Splits(binary.LittleEndian.Uint64(b[o:])) {
			return true, nil
		}
	}
	return false, nil
}
