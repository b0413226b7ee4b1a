package container

import (
	"errors"
	"fmt"

	"ulp/internal/regfile"
)

// Errors callers branch on.
var (
	// ErrNotContainer means the ELF file lacks the .ulp or .ulp.rev section.
	ErrNotContainer = errors.New("not a livepatch container")
	// ErrNotRegular means a container path names a FIFO, a device, a
	// socket or a folder, refused without opening it for reading.
	ErrNotRegular = regfile.ErrNotRegular
	// ErrTooLarge means a container file exceeds MaxFile.
	ErrTooLarge = errors.New("container file too large")
)

// FormatError reports malformed container bytes: a section payload, or the
// ELF file around it. Off is the byte offset inside the payload (or file).
type FormatError struct {
	Section string // the section, when known
	Off     int64
	Msg     string
	Val     any   // the offending value, if any
	Err     error // the underlying error, if any
}

func (e *FormatError) Error() string {
	s := "container: "
	if e.Section != "" {
		s += e.Section + ": "
	}
	s += e.Msg
	if e.Val != nil {
		s += fmt.Sprintf(" '%v'", e.Val)
	}
	s += fmt.Sprintf(" at offset %d", e.Off)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *FormatError) Unwrap() error { return e.Err }
