package ledger

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"testing"

	"ulp/livepatch/container"
	"ulp/livepatch/insn"
)

// entryPatch is testPatch with replacements within reach of mem's code.
func entryPatch(mem *fakeMem, n int, fns ...int) Patch {
	p := testPatch(mem, n, "libc.so.6", fns...)
	for i, f := range fns {
		p.Redirects[i].New = nearAddr(mem, n, f)
	}
	return p
}

func TestEntry_ApplyStackRevert(t *testing.T) {
	for _, endbr := range []bool{false, true} {
		mem := newEntryCode(3, endbr)
		orig := bytes.Clone(mem.b)
		off := uint64(0)
		if endbr {
			off = insn.EndbrLen
		}
		step := func(plan *Plan, err error) *Ledger {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
			mem.write(t, plan.Writes)
			if err := plan.Ledger.Validate(); err != nil {
				t.Fatal(err)
			}
			enc, err := Encode(plan.Ledger)
			if err != nil {
				t.Fatal(err)
			}
			if dec, err := Decode(enc); err != nil || !dec.Equal(plan.Ledger) {
				t.Fatalf("round trip: %v", err)
			}
			return plan.Ledger
		}

		// Apply patch 1 to functions 0 and 1: one 5-byte jump each, no pad.
		plan, err := Apply(&Ledger{}, entryPatch(mem, 1, 0, 1), mem)
		if err != nil {
			t.Fatal(err)
		}
		if len(plan.Writes) != 2 {
			t.Fatalf("writes %+v", plan.Writes)
		}
		for i, w := range plan.Writes {
			at := mem.fn(i) + off
			rel := int32(nearAddr(mem, 1, i) - (at + 5))
			want := binary.LittleEndian.AppendUint32([]byte{0xe9}, uint32(rel))
			if w.Addr != at || !bytes.Equal(w.Data, want) {
				t.Errorf("write %d = %#x % x, want %#x % x", i, w.Addr, w.Data, at, want)
			}
			s := plan.Ledger.Stack(mem.fn(i))
			if s.Mechanism != container.MechEntry || uint64(s.EntryOffset) != off || !bytes.Equal(s.Orig, labs[:5]) {
				t.Errorf("stack %d: %+v", i, s)
			}
			// A thread stopped at +3 (the neg) must not be resumed there.
			if !plan.Splits(at+3) || plan.Splits(at) || plan.Splits(at+5) {
				t.Errorf("Splits wrong around %#x", at)
			}
		}
		l := step(plan, err)
		for i, want := range []uint64{nearAddr(mem, 1, 0), nearAddr(mem, 1, 1), mem.fn(2)} {
			if got := mem.reach(t, mem.fn(i)); got != want {
				t.Fatalf("after apply: fn %d reaches %#x, want %#x", i, got, want)
			}
		}

		// Stack patch 2 on function 1: only its rel32 changes.
		plan, err = Apply(l, entryPatch(mem, 2, 1), mem)
		if err == nil && (len(plan.Writes) != 1 || plan.Writes[0].Addr != mem.fn(1)+off) {
			t.Fatalf("stacking writes %+v", plan.Writes)
		}
		l = step(plan, err)
		if got := mem.reach(t, mem.fn(1)); got != nearAddr(mem, 2, 1) {
			t.Fatalf("stacked: reach %#x", got)
		}
		// Revert patch 1 out of order: function 1 keeps patch 2, function 0
		// gets its original bytes back.
		l = step(Revert(l, container.ID{1, 0xaa}, mem))
		if got := mem.reach(t, mem.fn(1)); got != nearAddr(mem, 2, 1) {
			t.Fatalf("after out-of-order revert: reach %#x", got)
		}
		if got := mem.reach(t, mem.fn(0)); got != mem.fn(0) {
			t.Fatalf("fn 0 still redirected to %#x", got)
		}
		l = step(RevertAll(l, "libc.so.6", mem))
		if len(l.Patches) != 0 || len(l.Stacks) != 0 || !bytes.Equal(mem.b, orig) {
			t.Fatalf("after revert-all: ledger %+v, code restored %v", l, bytes.Equal(mem.b, orig))
		}
	}
}

func TestEntry_Rejects(t *testing.T) {
	t.Run("out of reach", func(t *testing.T) {
		mem := newEntryCode(1, false)
		_, err := Apply(&Ledger{}, testPatch(mem, 1, "libc.so.6", 0), mem)
		var re *ReachError
		if !errors.As(err, &re) || re.From != mem.fn(0) {
			t.Fatalf("Apply = %v, want a *ReachError", err)
		}
	})
	t.Run("syscall in the head", func(t *testing.T) {
		mem := newEntryCode(1, false)
		copy(mem.b[padLen:], []byte{0x0f, 0x05})
		_, err := Apply(&Ledger{}, entryPatch(mem, 1, 0), mem)
		var np *NotPatchableError
		if !errors.As(err, &np) {
			t.Fatalf("Apply = %v, want a *NotPatchableError", err)
		}
	})
	t.Run("code changed under the ledger", func(t *testing.T) {
		mem := newEntryCode(1, false)
		plan, err := Apply(&Ledger{}, entryPatch(mem, 1, 0), mem)
		if err != nil {
			t.Fatal(err)
		}
		mem.write(t, plan.Writes)
		mem.b[padLen+2]++
		_, err = Revert(plan.Ledger, container.ID{1, 0xaa}, mem)
		var mm *MismatchError
		if !errors.As(err, &mm) {
			t.Fatalf("Revert = %v, want a *MismatchError", err)
		}
	})
	t.Run("ledger with a bad original", func(t *testing.T) {
		mem := newEntryCode(1, false)
		plan, err := Apply(&Ledger{}, entryPatch(mem, 1, 0), mem)
		if err != nil {
			t.Fatal(err)
		}
		l := plan.Ledger.Clone()
		l.Stacks[0].Orig = slices.Clone(labs[:2])
		if err := l.Validate(); !errors.Is(err, ErrFormat) {
			t.Fatalf("Validate = %v", err)
		}
	})
}

// TestEntry_Replace: an atomic replace rewrites the rel32 of a function
// patched before and after, restores one patched only before, and jumps
// one patched only after, in one plan.
func TestEntry_Replace(t *testing.T) {
	mem := newEntryCode(3, false)
	orig := bytes.Clone(mem.b)
	plan, err := Apply(&Ledger{}, entryPatch(mem, 1, 0, 1), mem)
	if err != nil {
		t.Fatal(err)
	}
	mem.write(t, plan.Writes)
	plan, err = Replace(plan.Ledger, "libc.so.6", entryPatch(mem, 3, 1, 2), mem)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Writes) != 3 {
		t.Fatalf("writes %+v", plan.Writes)
	}
	mem.write(t, plan.Writes)
	for i, want := range []uint64{mem.fn(0), nearAddr(mem, 3, 1), nearAddr(mem, 3, 2)} {
		if got := mem.reach(t, mem.fn(i)); got != want {
			t.Errorf("fn %d reaches %#x, want %#x", i, got, want)
		}
	}
	if o := padLen; !bytes.Equal(mem.b[o:o+16], orig[o:o+16]) {
		t.Errorf("fn 0 not restored: % x", mem.b[o:o+16])
	}
	if err := plan.Ledger.Validate(); err != nil || len(plan.Ledger.Patches) != 1 {
		t.Fatalf("ledger %+v: %v", plan.Ledger, err)
	}
}
