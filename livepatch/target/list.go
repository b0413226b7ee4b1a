package target

import (
	"errors"
	"fmt"
	"iter"
	"os"

	"ulp/livepatch/procfs"
)

// Found is one process seen by List.
type Found struct {
	PID  int
	Comm string
	// UID is the process's effective user id, -1 when unknown.
	UID int
	// Err is set when the process could not be checked for the runtime
	// (typically a permission error: errors.Is(Err, fs.ErrPermission)).
	Err error
}

// List yields, ascending by pid, the processes that map the runtime and
// those whose memory map could not be read (with Err set), each as soon as
// it is checked: a caller can work on the first while the rest of /proc is
// being read. It skips the calling process, kernel threads, and processes
// that exit while it looks. Only the listing of /proc fails, before
// anything is yielded.
func List() (iter.Seq[Found], error) {
	pids, err := procfs.PIDs()
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	self := os.Getpid()
	return func(yield func(Found) bool) {
		for _, pid := range pids {
			if pid == self {
				continue
			}
			if f, ok := check(pid); ok && !yield(f) {
				return
			}
		}
	}, nil
}

// check reports whether pid is a candidate: it maps the runtime, or it
// could not be checked.
func check(pid int) (Found, bool) {
	f := Found{PID: pid, UID: -1}
	st, err := procfs.ReadStatus(pid)
	if err != nil {
		if errors.Is(err, procfs.ErrNoProcess) {
			return f, false
		}
		f.Err = err
		return f, true
	}
	f.Comm, f.UID = st.Name, st.Uid[1]
	// A kernel thread has no user memory. Not told by pid 2 (kthreadd) and
	// its children: inside a PID namespace, pid 2 is an ordinary process;
	// a kernel without the Kthread line gives them an empty memory map.
	if st.Kthread {
		return f, false
	}
	maps, err := procfs.Maps(pid)
	switch {
	case errors.Is(err, procfs.ErrNoProcess):
		return f, false
	case err != nil:
		f.Err = err
		return f, true
	}
	_, ok := runtimeMapping(pid, maps)
	return f, ok
}
