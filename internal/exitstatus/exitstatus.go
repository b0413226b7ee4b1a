package exitstatus

import (
	"errors"
	"fmt"
	"io"
)

// Error carries a specific exit status up to the command's Run. Err may be
// nil when the command already printed everything it had to say.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Print prints err once on w as "prog: err" and returns its exit status:
// 0 for nil, the Code of the first *Error in err's chain, else classify(err).
// An *Error with a nil Err prints nothing.
func Print(w io.Writer, prog string, err error, classify func(error) int) int {
	if err == nil {
		return 0
	}
	var code int
	var ee *Error
	if errors.As(err, &ee) {
		code = ee.Code
		if ee.Err == nil {
			return code
		}
	} else {
		code = classify(err)
	}
	fmt.Fprintf(w, "%s: %v\n", prog, err)
	return code
}
