package target

import (
	"errors"
	"fmt"
	"io/fs"
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
		f := Found{PID: pid, UID: -1}
		st, err := procfs.ReadStatus(pid)
		switch {
		case errors.Is(err, procfs.ErrNoProcess):
			return nil, fmt.Errorf("%w: pid %d", ErrNoSuchPID, pid)
		case err != nil:
			f.Err = err
		default:
			f.Comm, f.UID = st.Name, st.Uid[1]
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

// Filter narrows a selection of several processes (a glob, or every
// process) to those a whole-host command considers: the processes of one
// user, when UID is set, that the caller may inspect. A process the caller
// may not read (another user's, as a regular user; one in a sandbox the
// kernel hides even from root) is left out and counted in Inaccessible:
// not an error, since the caller could not have changed it.
type Filter struct {
	// UID, when not -1, keeps only the processes whose effective user id
	// it is.
	UID int
	// Inaccessible counts the processes left out because the caller may
	// not inspect them; read it once the sequence is drained.
	Inaccessible int
}

// Apply returns seq narrowed by the filter. It must be drained by one
// goroutine.
func (fl *Filter) Apply(seq iter.Seq[Found]) iter.Seq[Found] {
	return func(yield func(Found) bool) {
		for f := range seq {
			switch {
			case fl.UID != -1 && f.UID != fl.UID:
				continue
			case errors.Is(f.Err, fs.ErrPermission):
				fl.Inaccessible++
				continue
			}
			if !yield(f) {
				return
			}
		}
	}
}
