package cli

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"ulp/internal/testenv"
	"ulp/livepatch/report"
	"ulp/livepatch/trigger/triggertest"
)

// deadPID returns the PID of a process that has exited and been reaped.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// TestSelect_NothingSelected: a PID that does not exist is exit status 2
// and a glob that matches no process exit status 1, each saying so on
// stderr, for every run-time command; a build-id mismatch names both ids.
func TestSelect_NothingSelected(t *testing.T) {
	testenv.Require(t, testenv.Ptrace)
	fx := triggertest.Build(t)
	lp := fx.LP["lp200"]
	dead := strconv.Itoa(deadPID(t))
	glob := fmt.Sprintf("nosuch%d*", deadPID(t))
	noPID := "ulp: no such process: pid " + dead + "\n"
	noMatch := fmt.Sprintf("ulp: no process with libpulp.so.0 matches -p %q\n", glob)
	tests := []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"trigger", "-p", dead, lp}, report.ExitUsage, noPID},
		{[]string{"trigger", "-p", glob, lp}, report.ExitFailure, noMatch},
		{[]string{"patches", "-p", dead}, report.ExitUsage, noPID},
		{[]string{"patches", "-p", glob}, report.ExitFailure, noMatch},
		{[]string{"patches", "--json", "-p", glob}, report.ExitFailure, noMatch},
		{[]string{"messages", "-p", dead}, report.ExitUsage, noPID},
		{[]string{"messages", "-p", glob}, report.ExitFailure, noMatch},
		{[]string{"set_patchable", "-p", dead, "disable"}, report.ExitUsage, noPID},
		{[]string{"set_patchable", "-p", glob, "disable"}, report.ExitFailure, noMatch},
		{[]string{"check", "-p", dead, lp}, report.ExitUsage, "ulp: no such process"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args[:3], " "), func(t *testing.T) {
			stdout, stderr, code := inspectRun(t, tt.args...)
			if code != tt.code || !strings.HasPrefix(stderr, tt.stderr) {
				t.Errorf("exit %d (want %d), stderr %q (want %q)", code, tt.code, stderr, tt.stderr)
			}
			if strings.Contains(stdout, "SUCCESS") || strings.Contains(stdout, "SKIPPED") {
				t.Errorf("stdout %q", stdout)
			}
		})
	}
}
