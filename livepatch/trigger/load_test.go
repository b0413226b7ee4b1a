package trigger

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"ulp/internal/testenv"
	"ulp/livepatch/procfs"
	"ulp/livepatch/report"
	"ulp/livepatch/trigger/triggertest"
)

var long = flag.Bool("long", false, "run the long variants (1000 apply/revert cycles under load)")

// Bounds of TestUnderLoad_ApplyRevertCycles, stated in docs/security.md.
// After the first cycle the process's heap grows by at most heapOnce
// bytes (the first dlopen on each thread the agent borrows: the loader's
// per-thread records) plus heapPerCycle bytes per apply/revert cycle (the
// loader records each new name /proc/AGENT/fd/N of the one loaded
// container, 48 to 64 bytes). No mapping of a file is added; anonymous
// mappings grow by at most two per malloc arena a borrowed thread creates
// (at most 8 per core, glibc's limit), whatever the number of cycles.
const (
	heapOnce     = 16 << 10
	heapPerCycle = 128
)

// loadStat is one answer of testdata/load.c to "stat".
type loadStat struct{ calls, bad, lastBad, heap uint64 }

func askStat(t *testing.T, p *triggertest.Proc) loadStat {
	t.Helper()
	f := strings.Fields(p.Ask(t, "stat"))
	if len(f) != 4 {
		t.Fatalf("stat: %q", f)
	}
	var n [4]uint64
	for i := range f {
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			t.Fatalf("stat: %q: %v", f, err)
		}
		n[i] = uint64(v)
	}
	return loadStat{n[0], n[1], n[2], n[3]}
}

// agentTrig runs the agent binary, one process per trigger as in
// production (each a new PID, so a new name /proc/AGENT/fd/N), and returns
// its process record.
func agentTrig(t *testing.T, ulp string, args ...string) report.Process {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, ulp, append([]string{"trigger", "--json"}, args...)...).Output()
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var rec report.Process
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Type == report.TypeProcess {
			return rec
		}
	}
	t.Fatalf("ulp trigger %s: %v: no process record in %q", strings.Join(args, " "), err, out)
	return report.Process{}
}

// containerMaps counts the mappings of the process: anonymous, of a file,
// and of file.
func containerMaps(t *testing.T, pid int, file string) (anon, files, of int) {
	t.Helper()
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := idOf(fi)
	maps, err := procfs.Maps(pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range maps {
		switch {
		case m.Inode == id.ino:
			of++
			files++
		case m.Inode != 0:
			files++
		default:
			anon++
		}
	}
	return anon, files, of
}

// TestUnderLoad_ApplyRevertCycles: 16 threads call the patched function
// as fast as they can while the agent binary applies and reverts a
// container, 40 cycles (1000 with -long). No call returns a wrong value,
// the process survives, the container stays mapped once (the loader
// returns the copy already loaded: same device and inode), the number of
// mappings stays bounded and the heap grows by at most heapPerCycle bytes
// per cycle. It logs the median load and pause times.
func TestUnderLoad_ApplyRevertCycles(t *testing.T) {
	testenv.Require(t, testenv.Root, testenv.Ptrace, testenv.CC)
	ulp := testenv.Artifact(t, "ulp")
	fx := triggertest.Build(t)
	bin := filepath.Join(fx.Dir, "load")
	src, err := os.ReadFile(filepath.Join("testdata", "load.c"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin+".c", src, 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.CompileC(t, bin, []string{"-O2", "-pthread", "-Wl,-rpath," + fx.Dir}, bin+".c", fx.Calc)
	p := triggertest.Start(t, nil, bin, "16")
	lp := fx.LP["lp200"]
	pid := strconv.Itoa(p.PID)
	cycles := 40
	if *long {
		cycles = 1000
	}
	var loads, pauses []int64
	var first loadStat
	var firstAnon, firstFiles, firstOf int
	for i := range cycles {
		rep := agentTrig(t, ulp, "-p", pid, lp)
		if rep.Result != report.Success {
			t.Fatalf("cycle %d: apply: %s %q", i, rep.Result, rep.Reason)
		}
		loads = append(loads, rep.Timings.LoadUS)
		pauses = append(pauses, rep.Timings.PauseUS)
		if rep := agentTrig(t, ulp, "-p", pid, "--revert", lp); rep.Result != report.Success {
			t.Fatalf("cycle %d: revert: %s %q", i, rep.Result, rep.Reason)
		}
		if i == 0 {
			first = askStat(t, p)
			firstAnon, firstFiles, firstOf = containerMaps(t, p.PID, lp)
		}
	}
	last := askStat(t, p)
	anon, files, of := containerMaps(t, p.PID, lp)
	slices.Sort(loads)
	slices.Sort(pauses)
	growth := int64(last.heap) - int64(first.heap)
	t.Logf("%d cycles, %d calls: median load %d µs, median pause %d µs; heap %d -> %d B (%.1f B/cycle); mappings: anonymous %d -> %d, of files %d -> %d, of the container %d -> %d",
		cycles, last.calls, loads[len(loads)/2], pauses[len(pauses)/2], first.heap, last.heap,
		float64(growth)/float64(max(cycles-1, 1)), firstAnon, anon, firstFiles, files, firstOf, of)
	if last.bad != 0 {
		t.Errorf("%d calls returned a wrong value (last %d)", last.bad, int64(last.lastBad))
	}
	if last.calls <= first.calls {
		t.Errorf("the threads stopped calling: %d calls, then %d", first.calls, last.calls)
	}
	if of != firstOf || files != firstFiles || anon > firstAnon+2*8*runtime.NumCPU() {
		t.Errorf("mappings grew: anonymous %d -> %d, of files %d -> %d, of the container %d -> %d",
			firstAnon, anon, firstFiles, files, firstOf, of)
	}
	if bound := int64(heapOnce + heapPerCycle*(cycles-1)); growth > bound {
		t.Errorf("heap grew %d B in %d cycles, bound %d", growth, cycles-1, bound)
	}
	p.Untraced(t)
}
