package trigger

import (
	"fmt"

	"ulp/livepatch/procfs"
)

// tracedBy describes the tracer holding process pid, for the error of a
// seize that timed out: "" when the process is not traced.
func tracedBy(pid int) string {
	tracer := procfs.Tracer(pid)
	if tracer == 0 {
		return ""
	}
	return fmt.Sprintf(" (process %d is traced by pid %d, %s: a debugger, strace or another agent holds it)", pid, tracer, procfs.Name(tracer))
}
