package cli

import (
	"bytes"
	"strings"
	"testing"
)

// TestRun_ExitStatus: what cobra refuses before any command runs (an
// unknown command or flag, wrong arguments) is bad usage, like the errors
// the commands mark themselves.
func TestRun_ExitStatus(t *testing.T) {
	tests := []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"--help"}, ExitOK, ""},
		{[]string{"nosuch"}, ExitUsage, `ulp: unknown command "nosuch"`},
		{[]string{"dump", "--nosuch"}, ExitUsage, "unknown flag: --nosuch"},
		{[]string{"dump"}, ExitUsage, "accepts 1 arg(s), received 0"},
		{[]string{"-q", "-v", "dump", "x"}, ExitUsage, "mutually exclusive"},
		{[]string{"dump", "/nonexistent/x.so"}, ExitUsage, "/nonexistent/x.so"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), tt.args, &stdout, &stderr)
			if code != tt.code || !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("exit %d (want %d), stderr %q (want %q)", code, tt.code, stderr.String(), tt.stderr)
			}
		})
	}
}
