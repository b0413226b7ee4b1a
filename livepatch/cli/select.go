package cli

import (
	"errors"
	"fmt"
	"iter"
	"os/user"
	"strconv"

	"github.com/spf13/pflag"

	"ulp/livepatch/report"
	"ulp/livepatch/target"
)

// selectFlags are the process selection flags of the run-time commands.
type selectFlags struct {
	process string // -p: a PID or a glob; "" every process with the runtime
	user    string // -u: a user name or uid
}

func (s *selectFlags) add(f *pflag.FlagSet, processHelp string) {
	f.StringVarP(&s.process, "process", "p", "", processHelp)
	f.StringVarP(&s.user, "user", "u", "", "only the processes of `USER` (a name or a uid; the effective user id)")
}

// isPID reports whether the selector names one process.
func (s *selectFlags) isPID() bool {
	_, err := strconv.Atoi(s.process)
	return err == nil
}

// scan returns the selected processes. A PID is one process, which the
// command reports on whatever it is. A glob, or every process, is a
// whole-host selection: only the processes of -u USER, when given, that
// the caller may inspect (see target.Filter, whose count of the others is
// complete once the sequence is drained).
func (s *selectFlags) scan() (iter.Seq[target.Found], *target.Filter, error) {
	fl := &target.Filter{UID: -1}
	if s.user != "" {
		if s.isPID() {
			return nil, nil, usageError(errors.New("-u narrows a glob or every process, not a PID"))
		}
		uid, err := lookupUID(s.user)
		if err != nil {
			return nil, nil, usageError(err)
		}
		fl.UID = uid
	}
	seq, err := target.Scan(s.process)
	if err != nil {
		return nil, nil, usageError(err)
	}
	if s.isPID() {
		return seq, fl, nil
	}
	return fl.Apply(seq), fl, nil
}

// lookupUID returns the uid of a user name or a decimal uid.
func lookupUID(name string) (int, error) {
	if uid, err := strconv.Atoi(name); err == nil && uid >= 0 {
		return uid, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return 0, fmt.Errorf("-u %s: %w", name, err)
	}
	return strconv.Atoi(u.Uid)
}

// noMatch is the error of a run-time command whose -p glob selected no
// process: exit status 1, and stderr says so (a PID that does not exist
// fails earlier, in target.Scan, with exit status 2). Selecting every
// process (no -p) and finding none is not an error.
func (s *selectFlags) noMatch() error {
	if s.isPID() || s.process == "" {
		return nil
	}
	return &ExitError{Code: report.ExitFailure, Err: fmt.Errorf("no process with %s matches -p %q", target.RuntimeName, s.process)}
}
