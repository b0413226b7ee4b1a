package ledger_test

import (
	"bytes"
	"fmt"

	"ulp/livepatch/container"
	"ulp/livepatch/ledger"
)

// code is a tiny fake address space for the example: one padded function
// (14 NOPs, then `66 90` at the entry) at 0x100e.
type code []byte

const base = 0x1000

func (c code) ReadAt(p []byte, off int64) (int, error) { return copy(p, c[off-base:]), nil }

func Example() {
	mem := code(append(bytes.Repeat([]byte{0x90}, 14), 0x66, 0x90, 0xc3, 0xcc, 0xcc, 0xcc, 0xcc))
	fn := uint64(base + 14)

	plan, err := ledger.Apply(&ledger.Ledger{}, ledger.Patch{
		ID:        container.ID{1},
		Target:    "libfoo.so.1",
		Redirects: []ledger.Redirect{{Old: fn, New: 0x7f0000002000}},
	}, mem)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, w := range plan.Writes {
		fmt.Printf("write at %#x: % x\n", w.Addr, w.Data)
		copy(mem[w.Addr-base:], w.Data)
	}
	plan, err = ledger.Revert(plan.Ledger, container.ID{1}, mem)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, w := range plan.Writes {
		fmt.Printf("revert at %#x: % x\n", w.Addr, w.Data)
	}
	// Output:
	// write at 0x1000: ff 25 00 00 00 00 00 20 00 00 00 7f 00 00
	// write at 0x100e: eb f0
	// revert at 0x100e: 66 90
}
