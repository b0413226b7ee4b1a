package cli

import (
	"fmt"
	"strconv"

	"ulp/livepatch/target"
)

// noMatch is the error of a run-time command whose -p glob selected no
// process: exit status 1, and stderr says so (a PID that does not exist
// fails earlier, in target.Scan, with exit status 2). Selecting every
// process (no -p) and finding none is not an error.
func noMatch(selector string) error {
	if _, err := strconv.Atoi(selector); err == nil || selector == "" {
		return nil
	}
	return &ExitError{Code: ExitFailure, Err: fmt.Errorf("no process with %s matches -p %q", target.RuntimeName, selector)}
}
