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
	if tracer := procfs.Tracer(tid); tracer > 0 {
		return busyError(pid, tracer, err)
	}
	return fmt.Errorf("seize pid %d: %s: %w", pid, procfs.PtraceAdvice(pid, true), err)
}

// busyError reports a process held by another tracer.
func busyError(pid, tracer int, err error) error {
	return fmt.Errorf("%w: pid %d already traced by pid %d (%s): %w", ErrBusy, pid, tracer, procfs.Name(tracer), err)
}
