package ledger

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"slices"

	"ulp/livepatch/container"
	"ulp/livepatch/insn"
)

// Write is one write of code bytes into the target process.
type Write struct {
	Addr uint64
	Data []byte
}

// Splits reports whether a thread stopped at rip would resume in the middle
// of the bytes w rewrites. A thread stopped at w.Addr itself is safe: it
// resumes on a whole instruction, old or new.
func (w Write) Splits(rip uint64) bool {
	return rip > w.Addr && rip < w.Addr+uint64(len(w.Data))
}

// Plan is the result of planning: the ledger after the change and the
// writes that make the code match it.
type Plan struct {
	Ledger *Ledger
	// Writes are to be performed in order, with every thread stopped: pads
	// and address slots first, entry bytes last, so that a process left
	// after any prefix of the writes runs either old or new code.
	Writes []Write
}

// Splits reports whether a thread stopped at rip must not stay there while
// the plan is written (see [Write.Splits]).
func (p *Plan) Splits(rip uint64) bool {
	return slices.ContainsFunc(p.Writes, func(w Write) bool { return w.Splits(rip) })
}

// Apply plans applying patch p on top of the patches in l. mem reads the
// target's memory at an address (as an io.ReaderAt offset); it is used to
// check every touched function's code and to save original entry bytes.
// The returned plan's ledger holds p, with AppliedAt and the other fields as
// given. l is not modified.
func Apply(l *Ledger, p Patch, mem io.ReaderAt) (*Plan, error) {
	next, err := withPatch(l, p)
	if err != nil {
		return nil, err
	}
	return diff(l, next, mem)
}

// Revert plans reverting the patch with the given id. Every function it
// redirected falls back to the newest replacement still active, or to its
// original code.
func Revert(l *Ledger, id container.ID, mem io.ReaderAt) (*Plan, error) {
	if l.Patch(id) == nil {
		return nil, fmt.Errorf("revert %x: %w", id[:8], ErrNotApplied)
	}
	return diff(l, without(l, func(p *Patch) bool { return p.ID == id }), mem)
}

// RevertAll plans reverting every patch whose target is the object named
// target (a basename such as "libcrypto.so.3"). It fails with ErrNoPatches
// when there is none.
func RevertAll(l *Ledger, target string, mem io.ReaderAt) (*Plan, error) {
	onTarget := func(p *Patch) bool { return p.Target == target }
	if !slices.ContainsFunc(l.Patches, func(p Patch) bool { return onTarget(&p) }) {
		return nil, fmt.Errorf("revert all of %s: %w", target, ErrNoPatches)
	}
	return diff(l, without(l, onTarget), mem)
}

// Replace plans reverting every patch on target and applying p, as one set
// of writes. Functions patched both before and after only get their address
// slot rewritten, so no call ever reaches the original code in between.
// When p cannot be applied the error is returned and nothing is planned.
// Having no patch on target is not an error: Replace then only applies p.
func Replace(l *Ledger, target string, p Patch, mem io.ReaderAt) (*Plan, error) {
	next, err := withPatch(without(l, func(q *Patch) bool { return q.Target == target }), p)
	if err != nil {
		return nil, err
	}
	return diff(l, next, mem)
}

// withPatch returns a copy of l with p pushed on the stacks of its functions.
func withPatch(l *Ledger, p Patch) (*Ledger, error) {
	if err := checkPatch(p); err != nil {
		return nil, err
	}
	if l.Patch(p.ID) != nil {
		return nil, fmt.Errorf("apply %x: %w", p.ID[:8], ErrAlreadyApplied)
	}
	next := l.Clone()
	next.Patches = append(next.Patches, Patch{
		ID:        p.ID,
		Container: p.Container,
		Target:    p.Target,
		BuildID:   slices.Clone(p.BuildID),
		AppliedAt: p.AppliedAt,
		Labels:    slices.Clone(p.Labels),
		Redirects: slices.Clone(p.Redirects),
	})
	for _, r := range p.Redirects {
		i, ok := slices.BinarySearchFunc(next.Stacks, r.Old, func(s Stack, a uint64) int { return cmpU64(s.Addr, a) })
		if !ok {
			// Mechanism, EntryOffset and Orig are filled in by diff from the code.
			next.Stacks = slices.Insert(next.Stacks, i, Stack{Addr: r.Old})
		}
		next.Stacks[i].Entries = append(next.Stacks[i].Entries, Entry{Patch: p.ID, New: r.New})
	}
	return next, nil
}

func checkPatch(p Patch) error {
	if p.Target == "" {
		return fmt.Errorf("%w: no target name", ErrInvalid)
	}
	if len(p.Redirects) == 0 {
		return fmt.Errorf("%w: no functions", ErrInvalid)
	}
	seen := make(map[uint64]bool, len(p.Redirects))
	for _, r := range p.Redirects {
		switch {
		case r.Old < padLen || r.New == 0:
			return fmt.Errorf("%w: redirect %#x -> %#x", ErrInvalid, r.Old, r.New)
		case seen[r.Old]:
			return fmt.Errorf("%w: function %#x redirected twice", ErrInvalid, r.Old)
		}
		seen[r.Old] = true
	}
	return nil
}

// without returns a copy of l without the patches drop selects.
func without(l *Ledger, drop func(*Patch) bool) *Ledger {
	next := l.Clone()
	gone := make(map[container.ID]bool)
	next.Patches = slices.DeleteFunc(next.Patches, func(p Patch) bool {
		if drop(&p) {
			gone[p.ID] = true
			return true
		}
		return false
	})
	for i := range next.Stacks {
		s := &next.Stacks[i]
		s.Entries = slices.DeleteFunc(s.Entries, func(e Entry) bool { return gone[e.Patch] })
	}
	next.Stacks = slices.DeleteFunc(next.Stacks, func(s Stack) bool { return len(s.Entries) == 0 })
	return next
}

// diff checks the code of every function whose stack differs between old
// and next, completes next's new stacks from the code, and returns the
// writes that take the code from old's state to next's.
func diff(old, next *Ledger, mem io.ReaderAt) (*Plan, error) {
	var pads, entries []Write
	addrs := make([]uint64, 0, len(old.Stacks)+len(next.Stacks))
	for _, s := range old.Stacks {
		addrs = append(addrs, s.Addr)
	}
	for _, s := range next.Stacks {
		addrs = append(addrs, s.Addr)
	}
	slices.Sort(addrs)
	addrs = slices.Compact(addrs)

	for _, a := range addrs {
		o, n := old.Stack(a), next.Stack(a)
		if o != nil && n != nil {
			// A stack that was emptied and refilled (Replace) keeps its origin.
			n.Mechanism, n.EntryOffset, n.Orig = o.Mechanism, o.EntryOffset, slices.Clone(o.Orig)
			if slices.Equal(o.Entries, n.Entries) {
				continue
			}
		}
		code, err := readWindow(mem, a)
		if err != nil {
			return nil, err
		}
		if o != nil {
			if err := checkRedirected(o, code); err != nil {
				return nil, err
			}
		}
		switch {
		case o == nil:
			off := EntryOffset(code[padLen:])
			mech, err := mechanism(a, code)
			if err != nil {
				return nil, err
			}
			at := a + uint64(off)
			if mech == container.MechEntry {
				jmp, err := JumpBytes(at, n.Top().New)
				if err != nil {
					return nil, err
				}
				n.Mechanism, n.EntryOffset, n.Orig = mech, off, slices.Clone(code[padLen+off:padLen+int(off)+jumpLen])
				entries = append(entries, Write{Addr: at, Data: jmp})
				break
			}
			n.Mechanism, n.EntryOffset, n.Orig = mech, off, slices.Clone(code[padLen+off:padLen+int(off)+entryLen])
			pads = append(pads, Write{Addr: a - padLen, Data: PadBytes(n.Top().New)})
			entries = append(entries, Write{Addr: at, Data: EntryBytes(off)})
		case n == nil:
			entries = append(entries, Write{Addr: a + uint64(o.EntryOffset), Data: slices.Clone(o.Orig)})
		default:
			to := n.Top().New
			switch {
			case to == o.Top().New:
			case o.Mechanism == container.MechEntry:
				at := a + uint64(o.EntryOffset)
				jmp, err := JumpBytes(at, to)
				if err != nil {
					return nil, err
				}
				entries = append(entries, Write{Addr: at, Data: jmp})
			default:
				slot := make([]byte, slotLen)
				binary.LittleEndian.PutUint64(slot, to)
				pads = append(pads, Write{Addr: a - slotLen, Data: slot})
			}
		}
	}
	return &Plan{Ledger: next, Writes: append(pads, entries...)}, nil
}

// readWindow reads the windowLen bytes from a-14 that describe the state of
// the function at a. When the 14 bytes before a cannot be read (a function
// at the start of a mapping has no pad), they are returned as zeros.
func readWindow(mem io.ReaderAt, a uint64) ([]byte, error) {
	code := make([]byte, windowLen)
	if _, err := mem.ReadAt(code, int64(a-padLen)); err == nil {
		return code, nil
	}
	clear(code)
	if _, err := mem.ReadAt(code[padLen:], int64(a)); err != nil {
		return nil, fmt.Errorf("read code of function %#x: %w", a, err)
	}
	return code, nil
}

// checkRedirected checks that code (the window from s.Addr-14) holds what
// the ledger says was written: the jump to s's newest replacement.
func checkRedirected(s *Stack, code []byte) error {
	var want []byte
	start := 0
	if s.Mechanism == container.MechPad {
		want = PadBytes(s.Top().New)
	} else {
		start = padLen
	}
	if s.EntryOffset == insn.EndbrLen {
		want = insn.AppendEndbr(want)
	}
	if s.Mechanism == container.MechPad {
		want = append(want, EntryBytes(s.EntryOffset)...)
	} else {
		jmp, err := JumpBytes(s.Addr+uint64(s.EntryOffset), s.Top().New)
		if err != nil {
			return fmt.Errorf("%w: function %#x: %w", ErrFormat, s.Addr, err)
		}
		want = append(want, jmp...)
	}
	if got := code[start : start+len(want)]; !bytes.Equal(got, want) {
		return &MismatchError{Addr: s.Addr, Want: want, Got: slices.Clone(got)}
	}
	return nil
}

// mechanism decides how the function at addr, not patched yet, is
// redirected from its code (the window from addr-14): the pad when the 14
// NOPs and the 2-byte entry NOP are there, else the entry jump when the
// first instructions allow it (insn.CheckHead; the packer checked the rest
// of the function).
func mechanism(addr uint64, code []byte) (container.Mechanism, error) {
	off := EntryOffset(code[padLen:])
	entry := code[padLen+off : padLen+off+entryLen]
	pad := isFreshPad(code[:padLen])
	switch {
	case pad && isEntryNop(entry):
		return container.MechPad, nil
	case pad && entry[0] == 0xeb:
		return 0, &NotPatchableError{Addr: addr, Got: slices.Clone(code[:padLen+insn.EndbrLen+entryLen]),
			Why: "the entry already jumps somewhere the ledger does not know"}
	}
	if _, err := insn.CheckHead(code[padLen:]); err != nil {
		return 0, &NotPatchableError{Addr: addr, Got: slices.Clone(code),
			Why: "no pad, and the entry cannot take a jump: " + err.Error()}
	}
	return container.MechEntry, nil
}
