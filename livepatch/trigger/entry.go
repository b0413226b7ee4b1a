package trigger

import (
	"ulp/livepatch/ledger"
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

// unsafeStop reports whether a thread stopped at rip must be resumed and
// the stop retried before plan is written: it sits inside bytes to be
// rewritten, or inside the runtime, where a thread that a call borrowed may
// still be on its way back to a saved instruction pointer the agent cannot
// see, which may lie inside an entry to be rewritten (the 5 bytes of the
// entry mechanism, or between the two NOPs 90 90 of a pad).
func (r *run) unsafeStop(plan *ledger.Plan, rip uint64) bool {
	return plan.Splits(rip) || rip >= r.rt.TextStart && rip < r.rt.TextEnd
}
