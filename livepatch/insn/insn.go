package insn

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"golang.org/x/arch/x86/x86asm"
)

// JumpLen is the length of the entry jump `e9 rel32`.
const JumpLen = 5

// MaxHead is how many bytes from a function's entry [CheckHead] may need:
// an endbr64 and the longest instructions that the jump can overlap.
const MaxHead = EndbrLen + JumpLen - 1 + maxInstLen

// EndbrLen is the length of endbr64 (f3 0f 1e fa, Intel SDM: CET), the
// landing pad a function built with -fcf-protection starts with.
const EndbrLen = 4

const maxInstLen = 15

var endbr64 = []byte{0xf3, 0x0f, 0x1e, 0xfa}

// AppendEndbr appends endbr64 to b.
func AppendEndbr(b []byte) []byte { return append(b, endbr64...) }

// Endbr returns EndbrLen when code starts with endbr64, else 0: the offset
// of a function's first instruction after its landing pad.
func Endbr(code []byte) uint8 {
	if bytes.HasPrefix(code, endbr64) {
		return EndbrLen
	}
	return 0
}

// Reasons a function is refused; a *RefusedError wraps one of them.
var (
	// ErrTooShort: the function has fewer bytes than the jump needs.
	ErrTooShort = errors.New("function shorter than the 5-byte jump")
	// ErrUndecodable: an instruction could not be decoded.
	ErrUndecodable = errors.New("undecodable instruction")
	// ErrUnrelocatable: an instruction in the overwritten bytes would leave
	// a return address or a blocked thread inside them.
	ErrUnrelocatable = errors.New("instruction in the overwritten bytes cannot be moved")
	// ErrBranchInto: a branch of the function targets a byte inside the
	// overwritten bytes.
	ErrBranchInto = errors.New("branch into the overwritten bytes")
)

// RefusedError says why a function's entry cannot carry the jump.
type RefusedError struct {
	At     int   // offset from the function entry of the offending byte or instruction
	Reason error // ErrTooShort, ErrUndecodable, ErrUnrelocatable or ErrBranchInto
	Detail string
}

func (e *RefusedError) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("%v (at +%d)", e.Reason, e.At)
	}
	return fmt.Sprintf("%v (at +%d: %s)", e.Reason, e.At, e.Detail)
}

func (e *RefusedError) Unwrap() error { return e.Reason }

// Entry is where the jump goes in a function that accepts one.
type Entry struct {
	// Offset of the 5 overwritten bytes from the function entry: 0, or 4
	// after an endbr64.
	Offset uint8
	// Covered is the length, from Offset, of the instructions the jump
	// overlaps (at least JumpLen): the bytes a thread must not be inside
	// when the jump is written or removed.
	Covered int
}

// Check decodes fn, the bytes of a whole function (its symbol's value and
// size), and reports where the entry jump goes, or why it cannot: the
// function is too short, an instruction the jump overlaps cannot be decoded
// or moved, or a direct branch of the function targets the overwritten
// bytes. Indirect branches are not followed.
func Check(fn []byte) (Entry, error) {
	e, err := CheckHead(fn)
	if err != nil {
		return Entry{}, err
	}
	lo, hi := int(e.Offset), int(e.Offset)+e.Covered
	for pc := lo; pc < len(fn); {
		in, err := decode(fn[pc:])
		if err != nil {
			return Entry{}, &RefusedError{At: pc, Reason: ErrUndecodable,
				Detail: fmt.Sprintf("% x: branches into the entry cannot be ruled out", fn[pc:min(pc+8, len(fn))])}
		}
		if t, ok := target(in, pc); ok && t > lo && t < hi {
			return Entry{}, &RefusedError{At: pc, Reason: ErrBranchInto,
				Detail: fmt.Sprintf("%v targets +%d", in, t)}
		}
		pc += in.Len
	}
	return e, nil
}

// Ends decodes code linearly and returns the end offset of each
// instruction, in order; an undecodable byte counts as a 1-byte
// instruction, so the sweep resynchronises after data or padding.
func Ends(code []byte) []int {
	var ends []int
	for pc := 0; pc < len(code); {
		n := 1
		if in, err := x86asm.Decode(code[pc:], 64); err == nil && in.Len > 0 {
			n = in.Len
		}
		pc += n
		ends = append(ends, pc)
	}
	return ends
}

// Targets decodes code (a whole executable section) linearly and returns,
// sorted and without duplicates, the offsets in code that its direct
// branches (jumps, conditional jumps, calls) target. An undecodable byte is
// skipped, so the sweep resynchronises after data or padding; targets it
// finds there are spurious, which only makes a caller more careful.
func Targets(code []byte) []int {
	var ts []int
	for pc := 0; pc < len(code); {
		in, err := decode(code[pc:])
		if err != nil {
			pc++
			continue
		}
		if t, ok := target(in, pc); ok && t >= 0 && t < len(code) {
			ts = append(ts, t)
		}
		pc += in.Len
	}
	slices.Sort(ts)
	return slices.Compact(ts)
}

// CheckHead decodes the instructions at the start of code (a function's
// entry, at least the first MaxHead bytes when the function is that long)
// that the jump would overlap, and reports where the jump goes, or why it
// cannot. It does not see the rest of the function, so it cannot rule out a
// branch into the overwritten bytes: that is [Check]'s job.
func CheckHead(code []byte) (Entry, error) {
	e := Entry{Offset: Endbr(code)}
	lo := int(e.Offset)
	if len(code) < lo+JumpLen {
		return Entry{}, &RefusedError{At: len(code), Reason: ErrTooShort,
			Detail: fmt.Sprintf("%d bytes", len(code))}
	}
	pc := lo
	for pc < lo+JumpLen {
		in, err := decode(code[pc:])
		if err != nil {
			return Entry{}, &RefusedError{At: pc, Reason: ErrUndecodable,
				Detail: fmt.Sprintf("% x", code[pc:min(pc+8, len(code))])}
		}
		end := pc + in.Len
		if end < lo+JumpLen && stopsInside(in.Op) {
			return Entry{}, &RefusedError{At: pc, Reason: ErrUnrelocatable,
				Detail: fmt.Sprintf("%v ends inside the jump", in)}
		}
		pc = end
	}
	e.Covered = pc - lo
	return e, nil
}

// decode decodes one 64-bit instruction. x86asm answers a truncated
// instruction with its first byte as a lone prefix (Op 0): that is an error
// here.
func decode(b []byte) (x86asm.Inst, error) {
	in, err := x86asm.Decode(b, 64)
	if err == nil && in.Op == 0 {
		err = errors.New("truncated")
	}
	return in, err
}

// stopsInside reports whether a thread can be left, for longer than the
// agent's stop, with its resume address right after an instruction of op:
// a call's return address, a system call's blocked thread, a trap.
func stopsInside(op x86asm.Op) bool {
	switch op {
	case x86asm.CALL, x86asm.LCALL, x86asm.SYSCALL, x86asm.SYSENTER,
		x86asm.INT, x86asm.INTO, x86asm.UD1, x86asm.UD2, x86asm.HLT:
		return true
	}
	return false
}

// target returns the function offset a direct branch at pc goes to.
func target(in x86asm.Inst, pc int) (int, bool) {
	switch in.Op {
	case x86asm.JMP, x86asm.CALL, x86asm.JA, x86asm.JAE, x86asm.JB, x86asm.JBE,
		x86asm.JE, x86asm.JNE, x86asm.JG, x86asm.JGE, x86asm.JL, x86asm.JLE,
		x86asm.JO, x86asm.JNO, x86asm.JP, x86asm.JNP, x86asm.JS, x86asm.JNS,
		x86asm.JCXZ, x86asm.JECXZ, x86asm.JRCXZ, x86asm.LOOP, x86asm.LOOPE,
		x86asm.LOOPNE, x86asm.XBEGIN:
	default:
		return 0, false
	}
	for _, a := range in.Args {
		if rel, ok := a.(x86asm.Rel); ok {
			return pc + in.Len + int(rel), true
		}
	}
	return 0, false
}
