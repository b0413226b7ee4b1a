package ptrace

import (
	"fmt"
	"io"

	"golang.org/x/sys/unix"
)

// WriteData writes b at addr with process_vm_writev. The memory must be
// writable in the target (data, stack, the runtime's ledger); use WriteText
// for code.
func (p *Process) WriteData(addr uint64, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	local := []unix.Iovec{{Base: &b[0]}}
	local[0].SetLen(len(b))
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: len(b)}}
	n, err := unix.ProcessVMWritev(p.pid, local, remote, 0)
	if err != nil {
		return fmt.Errorf("write %d bytes at %#x: %w", len(b), addr, err)
	}
	if n != len(b) {
		return fmt.Errorf("write %d bytes at %#x: short write of %d: %w", len(b), addr, n, io.ErrShortWrite)
	}
	return nil
}

// WriteText writes b at addr through /proc/PID/mem. The kernel writes
// through page protections (FOLL_FORCE), so read-only text is written
// without any mprotect in the target; process_vm_writev would fail with
// EFAULT there. The caller stops every thread that could execute the bytes.
func (p *Process) WriteText(addr uint64, b []byte) error {
	if p.mem == nil {
		return ErrDetached
	}
	if addr > uint64(1)<<63 {
		return fmt.Errorf("write text at %#x: address out of range", addr)
	}
	n, err := p.mem.WriteAt(b, int64(addr))
	if err != nil {
		return fmt.Errorf("write %d bytes of text at %#x: %w", len(b), addr, err)
	}
	if n != len(b) {
		return fmt.Errorf("write %d bytes of text at %#x: short write of %d: %w", len(b), addr, n, io.ErrShortWrite)
	}
	return nil
}
