package target

import (
	"errors"
	"fmt"
	"path"
	"strconv"

	"ulp/livepatch/procfs"
)

// ErrBadPattern: a process selector is neither a PID nor a valid glob.
var ErrBadPattern = errors.New("bad process selector")

// Select turns the -p argument of the agent's commands into processes:
// "" selects every process that maps the runtime (see List); a decimal
// number selects that PID, whatever it maps (opening it tells); anything
// else is a glob (path.Match syntax) matched against the process name
// (comm) of every process that maps the runtime.
func Select(selector string) ([]Found, error) {
	if pid, err := strconv.Atoi(selector); err == nil {
		if pid <= 0 {
			return nil, fmt.Errorf("%w: pid %d", ErrBadPattern, pid)
		}
		f := Found{PID: pid}
		f.Comm, f.Err = procfs.Comm(pid)
		return []Found{f}, nil
	}
	if _, err := path.Match(selector, ""); err != nil {
		return nil, fmt.Errorf("%w: %q: %w", ErrBadPattern, selector, err)
	}
	all, err := List()
	if err != nil || selector == "" {
		return all, err
	}
	var out []Found
	for _, f := range all {
		if ok, _ := path.Match(selector, f.Comm); ok || f.Err != nil && f.Comm == "" {
			out = append(out, f)
		}
	}
	return out, nil
}
