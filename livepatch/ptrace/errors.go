package ptrace

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"ulp/livepatch/procfs"
)

// seizeError turns a failed PTRACE_SEIZE into advice, keeping err wrapped.
func seizeError(pid, tid int, err error) error {
	if !errors.Is(err, unix.EPERM) {
		return fmt.Errorf("seize thread %d of pid %d: %w", tid, pid, err)
	}
	if tracer := tracerOf(tid); tracer > 0 {
		return busyError(pid, tracer, err)
	}
	if scope, _ := procfs.PtraceScope(); scope == 3 {
		return fmt.Errorf("seize pid %d: yama ptrace_scope is 3 (ptrace disabled until reboot): %w", pid, err)
	} else if scope > 0 && os.Geteuid() != 0 {
		return fmt.Errorf("seize pid %d: yama ptrace_scope is %d: run as root, or echo 0 > /proc/sys/kernel/yama/ptrace_scope: %w", pid, scope, err)
	}
	if uid, e := procfs.Owner(pid); e == nil && uid != os.Geteuid() && os.Geteuid() != 0 {
		return fmt.Errorf("seize pid %d: the process belongs to uid %d: run as root: %w", pid, uid, err)
	}
	return fmt.Errorf("seize pid %d: not permitted (no CAP_SYS_PTRACE, or the process is not dumpable): %w", pid, err)
}

// busyError reports a process held by another tracer.
func busyError(pid, tracer int, err error) error {
	name, e := procfs.Comm(tracer)
	if e != nil {
		name = "?"
	}
	return fmt.Errorf("%w: pid %d already traced by pid %d (%s): %w", ErrBusy, pid, tracer, name, err)
}

// tracerOf returns the TracerPid of a task, 0 if none or unknown.
func tracerOf(tid int) int {
	st, err := procfs.ReadStatus(tid)
	if err != nil {
		return 0
	}
	return st.TracerPid
}
