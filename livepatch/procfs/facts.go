package procfs

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Dead reports a task that has exited: a zombie ('Z') or dead ('X', and
// 'x' of older kernels).
func (s *Status) Dead() bool { return s.State == 'Z' || s.State == 'X' || s.State == 'x' }

// Gone reports whether process pid has exited, is a zombie, or is exiting
// (its memory is already released: an empty memory map). A zombie main
// thread whose other threads still run (pthread_exit) is not gone; see
// [LeaderExited].
func Gone(pid int) bool {
	st, err := ReadStatus(pid)
	if err != nil {
		return errors.Is(err, ErrNoProcess)
	}
	if st.Dead() {
		return st.Threads <= 1 // not a main thread gone before the others
	}
	maps, err := Maps(pid)
	return errors.Is(err, ErrNoProcess) || err == nil && len(maps) == 0
}

// LeaderExited reports a process whose main thread has exited
// (pthread_exit) while other threads run: the kernel then gives no memory
// view through its PID (/proc/PID/maps is empty, process_vm_readv fails).
func LeaderExited(pid int) bool {
	st, err := ReadStatus(pid)
	return err == nil && st.State == 'Z' && st.Threads > 1
}

// PtraceScope returns Yama's kernel.yama.ptrace_scope (0: classic ptrace
// permissions, 1: only descendants, 2: only with CAP_SYS_PTRACE, 3: no
// attach), and false on a kernel without Yama.
func PtraceScope() (int, bool) {
	b, err := os.ReadFile(Root + "/sys/kernel/yama/ptrace_scope")
	if err != nil {
		return 0, false
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n, true
}

// Owner returns the uid that owns /proc/PID: the process's user, or root
// for a process that is not dumpable (setuid, prctl).
func Owner(pid int) (int, error) {
	fi, err := os.Stat(fmt.Sprintf("%s/%d", Root, pid))
	if err != nil {
		return 0, procErr(pid, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, fmt.Errorf("%s/%d: no owner", Root, pid)
	}
	return int(st.Uid), nil
}

// PtraceAdvice is the one advisor for an EPERM of ptrace access to process
// pid: it says, from Yama's ptrace_scope and the owner of /proc/PID, why
// the kernel refused the caller and what to do. attach is for PTRACE_SEIZE
// (stopping and writing the process); else the refusal was of reading its
// memory (process_vm_readv, /proc/PID/mem).
func PtraceAdvice(pid int, attach bool) string {
	scope, _ := PtraceScope()
	owner, oerr := Owner(pid)
	euid := os.Geteuid()
	if !attach {
		if scope != 0 && oerr == nil && owner == euid {
			return fmt.Sprintf("run ulp as root: yama ptrace_scope %d lets a user read only the memory of its own descendants", scope)
		}
		return "run ulp as the process's owner or as root"
	}
	switch {
	case scope == 3:
		return "yama ptrace_scope is 3 (ptrace disabled until reboot)"
	case scope > 0 && euid != 0:
		return fmt.Sprintf("yama ptrace_scope is %d: run as root, or echo 0 > %s/sys/kernel/yama/ptrace_scope", scope, Root)
	case oerr == nil && owner != euid && euid != 0:
		return fmt.Sprintf("the process belongs to uid %d: run as root", owner)
	}
	return "not permitted (no CAP_SYS_PTRACE, or the process is not dumpable)"
}

// Tracer returns the pid that traces task tid (its TracerPid), 0 when none
// or when the task cannot be read.
func Tracer(tid int) int {
	st, err := ReadStatus(tid)
	if err != nil {
		return 0
	}
	return st.TracerPid
}

// Name returns the comm of process pid, "?" when it cannot be read: for
// naming another process (a tracer) in a message.
func Name(pid int) string {
	name, err := Comm(pid)
	if err != nil {
		return "?"
	}
	return name
}
