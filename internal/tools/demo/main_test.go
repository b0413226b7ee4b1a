package main

import (
	"bytes"
	"strings"
	"testing"

	"ulp/internal/testenv"
)

// TestDemo runs the whole demo: the patch must show in the program's output
// and disappear after the revert, or run fails.
func TestDemo(t *testing.T) {
	testenv.Require(t, testenv.Root, testenv.Ptrace, testenv.CC, testenv.Build)
	var out bytes.Buffer
	if err := run(t.Context(), testenv.BuildDir(), &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	text := out.String()
	applied := strings.Index(text, "| [pid")
	for _, want := range []string{original, patched, "SUCCESS", "Done:"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// Original, then patched, then original again.
	first, mid, last := strings.Index(text, original), strings.Index(text, patched), strings.LastIndex(text, original)
	if applied < 0 || !(first < mid && mid < last) {
		t.Errorf("lines out of order:\n%s", text)
	}
}
