package target

import (
	"errors"
	"fmt"
	"iter"
	"path"
	"slices"
	"strconv"

	"ulp/livepatch/procfs"
)

// Errors of the process selectors.
var (
	// ErrBadPattern: a process selector is neither a PID nor a valid glob.
	ErrBadPattern = errors.New("bad process selector")
	// ErrNoSuchPID: the selector names a PID that does not exist.
	ErrNoSuchPID = errors.New("no such process")
)

// Select turns the -p argument of the agent's commands into processes:
// "" selects every process that maps the runtime (see List); a decimal
// number selects that PID, whatever it maps (opening it tells), and fails
// with ErrNoSuchPID when there is no such process; anything
// else is a glob (path.Match syntax) matched against the process name
// (comm) of every process that maps the runtime.
func Select(selector string) ([]Found, error) {
	seq, err := Scan(selector)
	if err != nil {
		return nil, err
	}
	return slices.Collect(seq), nil
}

// Scan is Select yielding each process as soon as it is found (see List),
// for a caller that starts work on the first ones while the rest of /proc
// is read. A bad selector fails before anything is yielded.
func Scan(selector string) (iter.Seq[Found], error) {
	if pid, err := strconv.Atoi(selector); err == nil {
		if pid <= 0 {
			return nil, fmt.Errorf("%w: pid %d", ErrBadPattern, pid)
		}
		f := Found{PID: pid}
		f.Comm, f.Err = procfs.Comm(pid)
		if errors.Is(f.Err, procfs.ErrNoProcess) {
			return nil, fmt.Errorf("%w: pid %d", ErrNoSuchPID, pid)
		}
		return slices.Values([]Found{f}), nil
	}
	if _, err := path.Match(selector, ""); err != nil {
		return nil, fmt.Errorf("%w: %q: %w", ErrBadPattern, selector, err)
	}
	all, err := List()
	if err != nil || selector == "" {
		return all, err
	}
	return func(yield func(Found) bool) {
		for f := range all {
			if ok, _ := path.Match(selector, f.Comm); ok || f.Err != nil && f.Comm == "" {
				if !yield(f) {
					return
				}
			}
		}
	}, nil
}
