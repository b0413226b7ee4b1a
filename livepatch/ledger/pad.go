package ledger

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"

	"ulp/livepatch/insn"
)

// Sizes of the pad mechanism (x86_64, -fpatchable-function-entry=16,14).
const (
	padLen   = 14 // bytes before the entry: jmp *0(%rip) + 8-byte address
	jmpLen   = 6  // ff 25 00 00 00 00
	slotLen  = 8  // the absolute address read by the jmp
	entryLen = 2  // the redirected entry bytes
	// windowLen is how many bytes from Addr-14 describe a function's state:
	// the pad, and what the entry mechanism needs to decode the first
	// instructions after an optional endbr64.
	windowLen = padLen + insn.MaxHead
	// jumpLen is the length of the entry mechanism's `e9 rel32`.
	jumpLen = insn.JumpLen
)

var jmpIndirect = []byte{0xff, 0x25, 0x00, 0x00, 0x00, 0x00}

// PadBytes returns the 14 bytes written at entry-14 to jump to newAddr:
// `ff 25 00 00 00 00` (jmp *0(%rip)) and the little-endian address.
func PadBytes(newAddr uint64) []byte {
	b := make([]byte, padLen)
	copy(b, jmpIndirect)
	binary.LittleEndian.PutUint64(b[jmpLen:], newAddr)
	return b
}

// EntryBytes returns the 2 bytes written at the entry (at entry+4 after an
// endbr64, entryOffset 4): a short jump back to entry-14, `eb f0` or `eb ec`.
func EntryBytes(entryOffset uint8) []byte {
	// rel8 is counted from the end of the 2-byte jump.
	rel := -int(padLen + int(entryOffset) + entryLen)
	return []byte{0xeb, byte(int8(rel))}
}

// EntryOffset returns where the 2 redirected entry bytes sit in the code
// starting at a function's entry: 4 after an endbr64, else 0.
func EntryOffset(code []byte) uint8 { return insn.Endbr(code) }

// isEntryNop reports whether b (2 bytes) is an unpatched entry: the 2-byte
// NOP `66 90` that `ulp post` writes, or two 1-byte NOPs `90 90`.
func isEntryNop(b []byte) bool {
	return bytes.Equal(b, []byte{0x66, 0x90}) || bytes.Equal(b, []byte{0x90, 0x90})
}

// isFreshPad reports whether pad (14 bytes) may be overwritten on a first
// apply: all NOPs as the compiler emitted them, or the unreachable jump a
// previous full revert left behind.
func isFreshPad(pad []byte) bool {
	return bytes.Equal(pad, bytes.Repeat([]byte{0x90}, padLen)) || bytes.HasPrefix(pad, jmpIndirect)
}

// ReachError reports a replacement that a `jmp rel32` at an unpadded
// function's entry cannot reach: it lies more than ±2 GiB away.
type ReachError struct {
	From, To uint64 // the jump's address and the replacement's
}

func (e *ReachError) Error() string {
	return fmt.Sprintf("replacement at %#x is out of the ±2 GiB reach of a jmp rel32 at %#x", e.To, e.From)
}

// JumpBytes returns the 5 bytes written at an unpadded function's entry
// (at addr, after endbr64 when present) to jump to newAddr: `e9 rel32`.
func JumpBytes(addr, newAddr uint64) ([]byte, error) {
	rel := int64(newAddr - (addr + jumpLen))
	if rel < math.MinInt32 || rel > math.MaxInt32 {
		return nil, &ReachError{From: addr, To: newAddr}
	}
	return binary.LittleEndian.AppendUint32([]byte{0xe9}, uint32(int32(rel))), nil
}
