package ledger

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"ulp/livepatch/insn"
)

// fakeMem is a flat code region at base that implements io.ReaderAt with
// addresses as offsets, and can apply a plan's writes.
type fakeMem struct {
	base uint64
	b    []byte
}

const fnStride = 64

// newCode returns memory holding n functions laid out as GCC emits them
// with -fpatchable-function-entry=16,14 after `ulp post`: 14 NOPs, the
// entry, optionally endbr64, then `66 90` and a ret. fn(i) is the entry of
// function i.
func newCode(n int, endbr bool) *fakeMem {
	m := &fakeMem{base: 0x7f0000001000, b: bytes.Repeat([]byte{0xcc}, n*fnStride)}
	for i := range n {
		o := i * fnStride
		copy(m.b[o:], bytes.Repeat([]byte{0x90}, padLen))
		o += padLen
		if endbr {
			o += copy(m.b[o:], insn.AppendEndbr(nil))
		}
		copy(m.b[o:], []byte{0x66, 0x90, 0xc3})
	}
	return m
}

// labs is labs() of Debian 12's libc.so.6: mov %rdi,%rax; neg %rax;
// cmovs %rdi,%rax; ret. A 5-byte jump at its entry splits the neg.
var labs = []byte{0x48, 0x89, 0xf8, 0x48, 0xf7, 0xd8, 0x48, 0x0f, 0x48, 0xc7, 0xc3}

// newEntryCode returns memory holding n functions without the pad, as
// distributions build them: int3 filler, optionally endbr64, then labs.
// fn(i) is the entry of function i.
func newEntryCode(n int, endbr bool) *fakeMem {
	m := &fakeMem{base: 0x7f0000001000, b: bytes.Repeat([]byte{0xcc}, n*fnStride)}
	for i := range n {
		o := i*fnStride + padLen
		if endbr {
			o += copy(m.b[o:], insn.AppendEndbr(nil))
		}
		copy(m.b[o:], labs)
	}
	return m
}

// nearAddr is the replacement of function fn in patch number patch for
// code at base: within reach of a jmp rel32.
func nearAddr(m *fakeMem, patch, fn int) uint64 {
	return m.base + 0x100000 + uint64(patch)<<12 + uint64(fn)<<4
}

func (m *fakeMem) fn(i int) uint64 { return m.base + uint64(i*fnStride) + padLen }

func (m *fakeMem) ReadAt(p []byte, off int64) (int, error) {
	a := uint64(off)
	if a < m.base || a+uint64(len(p)) > m.base+uint64(len(m.b)) {
		return 0, fmt.Errorf("fake memory: read of %d bytes at %#x out of range", len(p), a)
	}
	return copy(p, m.b[a-m.base:]), nil
}

func (m *fakeMem) write(t testing.TB, ws []Write) {
	t.Helper()
	for _, w := range ws {
		if w.Addr < m.base || w.Addr+uint64(len(w.Data)) > m.base+uint64(len(m.b)) {
			t.Fatalf("write of %d bytes at %#x out of range", len(w.Data), w.Addr)
		}
		copy(m.b[w.Addr-m.base:], w.Data)
	}
}

// reach decodes the code at the function entry addr the way the CPU would
// and returns where a call ends up: the address in the pad's slot when the
// entry jumps back into a well-formed pad, else addr itself.
func (m *fakeMem) reach(t *testing.T, addr uint64) uint64 {
	t.Helper()
	code := make([]byte, insn.EndbrLen+entryLen)
	if _, err := m.ReadAt(code, int64(addr)); err != nil {
		t.Fatal(err)
	}
	at := addr
	if insn.Endbr(code) != 0 {
		at += insn.EndbrLen
		code = code[insn.EndbrLen:]
	}
	switch {
	case code[0] == 0xe9:
		rel := make([]byte, 4)
		if _, err := m.ReadAt(rel, int64(at+1)); err != nil {
			t.Fatal(err)
		}
		return at + jumpLen + uint64(int64(int32(binary.LittleEndian.Uint32(rel))))
	case code[0] == 0x66 && code[1] == 0x90, code[0] == 0x90 && code[1] == 0x90:
		return addr
	case bytes.HasPrefix(labs, code):
		return addr
	case code[0] != 0xeb:
		t.Fatalf("entry %#x: unexpected bytes % x", addr, code[:2])
	}
	dst := uint64(int64(at) + 2 + int64(int8(code[1])))
	pad := make([]byte, padLen)
	if _, err := m.ReadAt(pad, int64(dst)); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(pad, jmpIndirect) {
		t.Fatalf("entry %#x jumps to %#x which holds % x, not jmp *0(%%rip)", addr, dst, pad)
	}
	return binary.LittleEndian.Uint64(pad[jmpLen:])
}
