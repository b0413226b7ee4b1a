package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"ulp/internal/testenv"
)

// TestRun runs the demo on a small fleet and checks that it completed every
// step (run verifies the programs' values itself).
func TestRun(t *testing.T) {
	testenv.Require(t, testenv.Root, testenv.Ptrace, testenv.CC, testenv.SSHD, testenv.Build)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	if err := run(ctx, log, &out, &errOut, 3, 1); err != nil {
		t.Fatalf("run: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errOut.String())
	}
	s := out.String()
	for _, want := range []string{
		"$ ulpfleet apply fix-calc.so",
		"apply: 3 hosts: 3 ok, 0 with process errors, 0 failed, 0 interrupted, 0 not attempted; processes: 3 patched",
		"every program now says calc_value() = 200",
		"host01: ",
		"ulp: applied ",
		"revert: 3 hosts: 3 ok",
		"every program now says calc_value() = 100",
		"(no patches applied on any host)",
		"tearing the fleet down",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	// Without a terminal, a line per host on stderr stands in for the
	// progress display.
	if !strings.Contains(errOut.String(), `msg="host done" host=host01`) {
		t.Errorf("stderr lacks the per-host lines:\n%s", errOut.String())
	}
}

func TestRun_BadSize(t *testing.T) {
	if err := run(t.Context(), slog.New(slog.DiscardHandler), nil, nil, 1, 1); err == nil {
		t.Error("a fleet of 1 host accepted")
	}
}
