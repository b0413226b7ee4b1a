package ptrace

import (
	"errors"
	"fmt"

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
	return fmt.Errorf("seize pid %d: %s: %w", pid, procfs.PtraceAdvice(pid, true), err)
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
