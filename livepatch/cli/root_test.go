package cli

import (
	"bytes"
	"strings"
	"testing"

	"ulp/livepatch/report"
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
		{[]string{"--help"}, report.ExitOK, ""},
		{[]string{"nosuch"}, report.ExitUsage, `ulp: unknown command "nosuch"`},
		{[]string{"dump", "--nosuch"}, report.ExitUsage, "unknown flag: --nosuch"},
		{[]string{"dump"}, report.ExitUsage, "accepts 1 arg(s), received 0"},
		{[]string{"-q", "-v", "dump", "x"}, report.ExitUsage, "mutually exclusive"},
		{[]string{"dump", "/nonexistent/x.so"}, report.ExitUsage, "/nonexistent/x.so"},
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

// TestVersion: `ulp --version` and `ulp version` print the same line, with
// the version set at link time and the runtime ABI this agent speaks.
func TestVersion(t *testing.T) {
	var lines []string
	for _, args := range [][]string{{"--version"}, {"-V"}, {"version"}} {
		var stdout, stderr bytes.Buffer
		if code := run(t.Context(), args, &stdout, &stderr); code != report.ExitOK || stderr.Len() != 0 {
			t.Fatalf("%v: exit %d, stderr %q", args, code, stderr.String())
		}
		lines = append(lines, stdout.String())
	}
	want := "ulp " + Version + " (runtime ABI 1, go1."
	if lines[0] != lines[1] || lines[1] != lines[2] || !strings.HasPrefix(lines[0], want) || strings.Count(lines[0], "\n") != 1 {
		t.Errorf("--version %q, version %q; want one line starting %q", lines[0], lines[1], want)
	}
}
