package ptrace

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Regs is the kernel's struct user_regs_struct for x86_64 (asm/ptrace.h),
// including orig_rax and fs_base.
type Regs unix.PtraceRegs

func getRegs(tid int, r *Regs) error {
	return ptrace(unix.PTRACE_GETREGS, tid, 0, uintptr(unsafe.Pointer(r)))
}

func setRegs(tid int, r *Regs) error {
	return ptrace(unix.PTRACE_SETREGS, tid, 0, uintptr(unsafe.Pointer(r)))
}

// ptrace issues one ptrace(2) request. Callers run on the tracer thread.
func ptrace(req int, tid int, addr, data uintptr) error {
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, uintptr(req), uintptr(tid), addr, data, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}
