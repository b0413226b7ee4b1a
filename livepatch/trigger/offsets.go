package trigger

import (
	"cmp"
	"slices"
	"sync"

	"ulp/livepatch/container"
	"ulp/livepatch/elfsym"
	"ulp/livepatch/ledger"
)

// A container is hostile input: its offsets are checked before anything
// is mapped or written. Against the container file (checkContainer): every
// new function in its executable segment, every reference in its writable
// data (container.Spec.CheckOffsets). Against the target as the process
// maps it (checkOffsets): every byte a redirection writes in one executable
// mapping of the target, every old function at a function start (a
// function symbol, or an .eh_frame entry of a stripped library), and no two
// redirections of the process, old and new, writing the same byte
// (checkOverlaps).

// funcStarts caches FuncStart answers by the target's build-id and offset:
// a whole-host trigger asks the same for every process.
var funcStarts sync.Map // funcStartKey → bool

type funcStartKey struct {
	buildID string
	off     uint64
}

// targetSegments returns the mappings of the target object as segments,
// in offsets from its load bias.
func (r *run) targetSegments() []elfsym.Segment {
	var segs []elfsym.Segment
	for _, m := range r.tp.Maps() {
		if m.Start < r.obj.Start || m.End > r.obj.End || m.Inode == 0 || m.Start < r.obj.Bias {
			continue
		}
		segs = append(segs, elfsym.Segment{Vaddr: m.Start - r.obj.Bias, Memsz: m.End - m.Start, Exec: m.Executable(), Write: m.Writable()})
	}
	return segs
}

// checkOffsets checks the new patch's old functions against the target as
// mapped.
func (r *run) checkOffsets() error {
	if err := r.spec.CheckOffsets(r.targetSegments(), nil); err != nil {
		return failed("invalid container: %w", err)
	}
	var file *elfsym.File
	defer func() {
		if file != nil {
			file.Close()
		}
	}()
	for _, f := range r.spec.Funcs {
		k := funcStartKey{string(r.obj.BuildID), f.OldOffset}
		ok, cached := funcStarts.Load(k)
		if !cached {
			if file == nil {
				var err error
				if file, err = r.tp.Symbols(r.obj); err != nil {
					return failed("invalid container: cannot check where the functions of %s start: %w", r.obj.Name, err)
				}
			}
			start, err := file.FuncStart(f.OldOffset)
			if err != nil {
				return failed("invalid container: cannot check where the functions of %s start: %w", r.obj.Name, err)
			}
			if len(r.obj.BuildID) > 0 {
				funcStarts.Store(k, start)
			}
			ok = start
		}
		if !ok.(bool) {
			return failed("invalid container: %w: function %s at %#x: no function of %s starts there (no function symbol, no .eh_frame entry)",
				container.ErrOffset, f.Old, f.OldOffset, r.obj.Name)
		}
	}
	return nil
}

// written returns the bytes [lo, hi) that a stack's redirection writes.
func written(s ledger.Stack) (lo, hi uint64) {
	f := container.Func{OldOffset: s.Addr, Mechanism: s.Mechanism, EntryOffset: s.EntryOffset}
	return f.Written()
}

// checkOverlaps refuses a planned ledger in which two redirected functions
// write the same byte: neither could be reverted cleanly.
func checkOverlaps(l *ledger.Ledger) error {
	stacks := slices.Clone(l.Stacks)
	slices.SortFunc(stacks, func(a, b ledger.Stack) int { return cmp.Compare(a.Addr, b.Addr) })
	for i := 1; i < len(stacks); i++ {
		alo, ahi := written(stacks[i-1])
		blo, bhi := written(stacks[i])
		if blo < ahi && alo < bhi {
			return failed("invalid container: %w: the redirections of the functions at %#x and %#x overlap (%#x-%#x and %#x-%#x)",
				container.ErrOffset, stacks[i-1].Addr, stacks[i].Addr, alo, ahi, blo, bhi)
		}
	}
	return nil
}
