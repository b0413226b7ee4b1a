package container

import (
	"errors"
	"fmt"

	"ulp/livepatch/elfsym"
	"ulp/livepatch/insn"
)

// ErrOffset means an offset of a Spec does not fit the target or the
// livepatch it describes.
var ErrOffset = errors.New("bad offset")

// Written returns the range [lo, hi) of target offsets that redirecting f
// rewrites: the 14 bytes of the pad before the entry and the two at
// EntryOffset (MechPad), or the 5 bytes of the jump at EntryOffset
// (MechEntry).
func (f Func) Written() (lo, hi uint64) {
	at := f.OldOffset + uint64(f.EntryOffset)
	if f.Mechanism == MechEntry {
		return at, at + insn.JumpLen
	}
	return f.OldOffset - min(f.OldOffset, elfsym.PrePad), at + 2
}

// CheckOffsets checks the offsets of an apply Spec against the segments of
// its target and of its livepatch (either may be nil: not checked): every
// byte a redirection rewrites lies in one executable segment of the target,
// no two redirections rewrite the same byte, every new function starts in an
// executable segment of the livepatch, every reference's variable (8 bytes,
// 16 for a tls_index) lies in a writable segment of the livepatch, and every
// target variable a reference names lies in a segment of the target.
func (s *Spec) CheckOffsets(target, patch []elfsym.Segment) error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrOffset}, args...)...))
	}
	for i, f := range s.Funcs {
		lo, hi := f.Written()
		if f.Mechanism != MechPad && f.Mechanism != MechEntry {
			bad("function %s: unknown mechanism %d", f.Old, f.Mechanism)
			continue
		}
		if target != nil {
			if sg, ok := elfsym.SegmentAt(target, lo, hi-lo); !ok || !sg.Exec {
				bad("function %s at %#x: the bytes %#x-%#x its redirection writes are not all in one executable segment of %s", f.Old, f.OldOffset, lo, hi, s.Target.Name)
			}
		}
		for _, g := range s.Funcs[:i] {
			if glo, ghi := g.Written(); lo < ghi && glo < hi {
				bad("functions %s at %#x and %s at %#x: their redirections overlap (%#x-%#x and %#x-%#x)", g.Old, g.OldOffset, f.Old, f.OldOffset, glo, ghi, lo, hi)
			}
		}
		if patch != nil {
			if sg, ok := elfsym.SegmentAt(patch, f.NewOffset, 1); f.NewOffset == 0 || !ok || !sg.Exec {
				bad("function %s: the replacement %s at %#x is not in an executable segment of the livepatch", f.Old, f.New, f.NewOffset)
			}
		}
	}
	for _, r := range s.Refs {
		n := uint64(8)
		if r.TLS {
			n = 16
		}
		if patch != nil {
			if sg, ok := elfsym.SegmentAt(patch, r.PatchOffset, n); !ok || !sg.Write {
				bad("reference %s: its %d bytes at %#x are not in a writable segment of the livepatch", r.PatchRef, n, r.PatchOffset)
			}
		}
		if target != nil && !r.TLS {
			if _, ok := elfsym.SegmentAt(target, r.TargetOffset, 1); !ok {
				bad("reference %s: the target variable %s at %#x is not in a segment of %s", r.PatchRef, r.TargetVar, r.TargetOffset, s.Target.Name)
			}
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return nil
}
