package trigger

import (
	"fmt"

	"ulp/livepatch/procfs"
)

// tracedBy describes the tracer holding process pid, for the error of a
// seize that timed out: "" when the process is not traced.
func tracedBy(pid int) string {
	st, err := procfs.ReadStatus(pid)
	if err != nil || st.TracerPid == 0 {
		return ""
	}
	name, err := procfs.Comm(st.TracerPid)
	if err != nil {
		name = "?"
	}
	return fmt.Sprintf(" (process %d is traced by pid %d, %s: a debugger, strace or another agent holds it)", pid, st.TracerPid, name)
}
