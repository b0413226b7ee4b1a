package ptrace

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

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
	if scope := ptraceScope(); scope == 3 {
		return fmt.Errorf("seize pid %d: yama ptrace_scope is 3 (ptrace disabled until reboot): %w", pid, err)
	} else if scope > 0 && os.Geteuid() != 0 {
		return fmt.Errorf("seize pid %d: yama ptrace_scope is %d: run as root, or echo 0 > /proc/sys/kernel/yama/ptrace_scope: %w", pid, scope, err)
	}
	if fi, e := os.Stat("/proc/" + strconv.Itoa(pid)); e == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() && os.Geteuid() != 0 {
			return fmt.Errorf("seize pid %d: the process belongs to uid %d: run as root: %w", pid, st.Uid, err)
		}
	}
	return fmt.Errorf("seize pid %d: not permitted (no CAP_SYS_PTRACE, or the process is not dumpable): %w", pid, err)
}

// busyError reports a process held by another tracer.
func busyError(pid, tracer int, err error) error {
	return fmt.Errorf("%w: pid %d already traced by pid %d (%s): %w", ErrBusy, pid, tracer, comm(tracer), err)
}

// tracerOf returns the TracerPid of a task, 0 if none or unknown.
func tracerOf(tid int) int {
	st, err := procfs.ReadStatus(tid)
	if err != nil {
		return 0
	}
	return st.TracerPid
}

func ptraceScope() int {
	b, err := os.ReadFile("/proc/sys/kernel/yama/ptrace_scope")
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

func comm(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}
