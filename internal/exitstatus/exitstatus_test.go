package exitstatus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestPrint(t *testing.T) {
	classify := func(err error) int {
		if errors.Is(err, context.Canceled) {
			return 130
		}
		return 1
	}
	tests := []struct {
		name string
		err  error
		code int
		out  string
	}{
		{"nil", nil, 0, ""},
		{"plain", errors.New("boom"), 1, "prog: boom\n"},
		{"classified", fmt.Errorf("wait: %w", context.Canceled), 130, "prog: wait: context canceled\n"},
		{"carried", &Error{Code: 2, Err: errors.New("bad flag")}, 2, "prog: bad flag\n"},
		{"wrapped carrier", fmt.Errorf("run: %w", &Error{Code: 3, Err: context.Canceled}), 3, "prog: run: context canceled\n"},
		{"silent", &Error{Code: 1}, 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if got := Print(&b, "prog", tt.err, classify); got != tt.code {
				t.Errorf("code = %d, want %d", got, tt.code)
			}
			if b.String() != tt.out {
				t.Errorf("printed %q, want %q", b.String(), tt.out)
			}
		})
	}
}

func TestError_Unwrap(t *testing.T) {
	err := &Error{Code: 2, Err: context.Canceled}
	if !errors.Is(err, context.Canceled) {
		t.Error("errors.Is does not see the carried error")
	}
	if got := (&Error{Code: 4}).Error(); got != "exit status 4" {
		t.Errorf("Error() = %q", got)
	}
}
