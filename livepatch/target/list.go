package target

import (
	"errors"
	"fmt"
	"os"

	"ulp/livepatch/procfs"
)

// Found is one process seen by List.
type Found struct {
	PID  int
	Comm string
	// Err is set when the process could not be checked for the runtime
	// (typically a permission error: errors.Is(Err, fs.ErrPermission)).
	Err error
}

// List returns, ascending by pid, the processes that map the runtime and
// those whose memory map could not be read (with Err set). It skips the
// calling process, kernel threads, and processes that exit while it looks.
func List() ([]Found, error) {
	pids, err := procfs.PIDs()
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	self := os.Getpid()
	var out []Found
	for _, pid := range pids {
		if pid == self {
			continue
		}
		f, ok := check(pid)
		if ok {
			out = append(out, f)
		}
	}
	return out, nil
}

// check reports whether pid is a candidate: it maps the runtime, or it
// could not be checked.
func check(pid int) (Found, bool) {
	f := Found{PID: pid}
	st, err := procfs.ReadStatus(pid)
	if err != nil {
		if errors.Is(err, procfs.ErrNoProcess) {
			return f, false
		}
		f.Err = err
		return f, true
	}
	f.Comm = st.Name
	if pid == 2 || st.PPid == 2 { // kthreadd and its children: no user memory
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
	for _, m := range maps {
		if m.Base() == RuntimeName || m.Base() == RuntimeName+deletedSuffix {
			return f, true
		}
	}
	return f, false
}
