package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestActivate_InProcessSSH: with --activate the agent on every host runs
// `ulp trigger --activate`, for apply and revert, and a retry of such a run
// keeps it without being given it again.
func TestActivate_InProcessSSH(t *testing.T) {
	f := startInProcessFleet(t, 3, "")
	ctx := t.Context()
	args := append(append([]string{}, f.args...), "--activate")
	activated := func(i int) bool {
		_, err := os.Stat(filepath.Join(f.staging[i], "activate"))
		return err == nil
	}
	clear := func() {
		for _, st := range f.staging {
			os.Remove(filepath.Join(st, "activate"))
		}
	}

	code, out, _, _ := cliRun(ctx, t, append([]string{"plan", sampleContainer}, args...)...)
	if code != 0 || !strings.Contains(out, "trigger --json -p '*' --activate ") {
		t.Errorf("plan: exit %d, no --activate for the agent\n%s", code, out)
	}
	for _, action := range []string{"apply", "revert"} {
		clear()
		code, out, _, _ = cliRun(ctx, t, append([]string{action, "--json", sampleContainer}, args...)...)
		if _, sum := decodeRecords(t, out); code != 0 || sum.OK != 3 {
			t.Fatalf("%s: exit %d, %+v", action, code, sum)
		}
		for i := range f.staging {
			if !activated(i) {
				t.Errorf("%s: host%02d: agent run without --activate", action, i+1)
			}
		}
	}
	// Without the flag, the agent is not asked to.
	clear()
	if code, _, _, _ = cliRun(ctx, t, append([]string{"apply", sampleContainer}, f.args...)...); code != 0 || activated(0) {
		t.Errorf("apply without --activate: exit %d, activated %v", code, activated(0))
	}
	// A retry of a run with --activate keeps it.
	results := filepath.Join(t.TempDir(), "run.ndjson")
	f.setMode(t, 1, "error")
	cliRun(ctx, t, append([]string{"apply", sampleContainer, "--results", results}, args...)...)
	f.setMode(t, 1, "ok")
	clear()
	code, _, _, _ = cliRun(ctx, t, append([]string{"retry", "--results", results}, withoutCanary(f.args)...)...)
	if code != 0 || !activated(1) || activated(0) {
		t.Errorf("retry without --activate: exit %d, host02 activated %v (want true), host01 %v (want false: it succeeded)", code, activated(1), activated(0))
	}
}
