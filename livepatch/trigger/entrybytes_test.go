package trigger

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"ulp/internal/testenv"
	"ulp/livepatch/procfs"
	"ulp/livepatch/report"
	"ulp/livepatch/trigger/triggertest"
)

// TestThreadsInsideEntryBytes: threads execute the very bytes the agent
// rewrites at the moment of every write, and are never broken. Four threads
// call two tiny functions in a tight loop (testdata/entryspin.c), so that
// at any instant some thread is fetching, executing or stopped inside each
// function's first bytes: pad_value (pad mechanism, entry `66 90`, written
// while every thread runs, by the runtime's single stores) and entry_value
// (entry mechanism, a 5-byte jump over its first instructions, written with
// every thread stopped, a stop inside those bytes retried). The agent
// binary applies and reverts each 30 times; every call returns the old or
// the new value, the process lives on, the pad writes stop no thread
// (pause 0) while the entry writes do, and the library's mappings are as
// many as before (its code spans several pages: a write must not split the
// mapping).
func TestThreadsInsideEntryBytes(t *testing.T) {
	testenv.Require(t, testenv.Root, testenv.Ptrace, testenv.CC, testenv.Build)
	ulp := testenv.Artifact(t, "ulp")
	dir := t.TempDir()
	lib := filepath.Join(dir, "libentry.so.1")
	src := func(name string) string {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	testenv.CompileC(t, lib, append([]string{"-shared", "-fPIC", "-Wl,-soname,libentry.so.1"}, triggertest.Patchable...), src("libentry.c"))
	if out, err := exec.Command(ulp, "post", lib).CombinedOutput(); err != nil {
		t.Fatalf("ulp post: %v: %s", err, out)
	}
	bin := filepath.Join(dir, "entryspin")
	testenv.CompileC(t, bin, []string{"-O2", "-pthread", "-Wl,-rpath," + dir}, src("entryspin.c"), lib)
	fx := &triggertest.Fixture{Dir: dir}
	pack := func(name, line string) string {
		so := filepath.Join(dir, name+".so")
		testenv.CompileC(t, so, []string{"-shared", "-fPIC", "-O2", "-Wl,--build-id"}, src("lp_entry2.c"))
		return fx.PackFile(t, so, lib, line)
	}
	lpPad := pack("lp_pad", "pad_value:pad_value_lp")
	lpEntry := pack("lp_entry", "entry_value:entry_value_lp")

	p := triggertest.Start(t, nil, bin, "2")
	pid := strconv.Itoa(p.PID)
	libMaps := func() int {
		maps, err := procfs.Maps(p.PID)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, m := range maps {
			if m.Path == lib {
				n++
			}
		}
		return n
	}
	mapsBefore := libMaps()
	stat := func() (calls, bad int64, last string) {
		f := strings.Fields(p.Ask(t, "stat"))
		if len(f) != 3 {
			t.Fatalf("stat: %q", f)
		}
		calls, _ = strconv.ParseInt(f[0], 10, 64)
		bad, _ = strconv.ParseInt(f[1], 10, 64)
		return calls, bad, f[2]
	}
	before, _, _ := stat()
	for _, tc := range []struct {
		mech string
		lp   string
		live bool // written with no thread stopped
	}{
		{"pad", lpPad, true},
		{"entry", lpEntry, false},
	} {
		for i := range 30 {
			for _, args := range [][]string{{"-p", pid, tc.lp}, {"-p", pid, "--revert", tc.lp}} {
				rep := agentTrig(t, ulp, args...)
				if rep.Result != report.Success {
					t.Fatalf("%s, cycle %d: %v: %s %q", tc.mech, i, args, rep.Result, rep.Reason)
				}
				if (rep.Timings.PauseUS == 0) != tc.live {
					t.Errorf("%s, cycle %d: %v: pause %d µs, want it zero only for the pad mechanism", tc.mech, i, args, rep.Timings.PauseUS)
				}
			}
		}
	}
	if n := libMaps(); n != mapsBefore {
		t.Errorf("the library's mappings went from %d to %d: a write split them", mapsBefore, n)
	}
	after, bad, last := stat()
	if bad != 0 {
		t.Errorf("%d calls returned a wrong value (last %s)", bad, last)
	}
	if after <= before {
		t.Errorf("the threads stopped calling: %d calls, then %d", before, after)
	}
	p.Untraced(t)
}
