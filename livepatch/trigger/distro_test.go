package trigger

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"ulp/internal/testenv"
	"ulp/livepatch/container"
	"ulp/livepatch/elfsym"
	"ulp/livepatch/procfs"
	"ulp/livepatch/report"
	"ulp/livepatch/target"
	"ulp/livepatch/trigger/triggertest"
)

// The distribution's libraries as installed (make deps installs
// libssl-dev): built without the pad, so the entry mechanism patches them.
const (
	distroLibc   = "/lib/x86_64-linux-gnu/libc.so.6"
	distroCrypto = "/usr/lib/x86_64-linux-gnu/libcrypto.so.3"
)

// distroFixture compiles testdata/distro.c (with extra cflags) against the
// system's libc and libcrypto, and packs one container for each from
// testdata/lp_distro.c.
type distroFixture struct {
	bin, libc, crypto string
}

func buildDistro(t *testing.T, cflags ...string) *distroFixture {
	t.Helper()
	testenv.Require(t, testenv.CC)
	fx := &triggertest.Fixture{Dir: t.TempDir(), LP: map[string]string{}}
	src := func(name string) string {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(fx.Dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	d := &distroFixture{bin: filepath.Join(fx.Dir, "distro")}
	testenv.CompileC(t, d.bin, append([]string{"-O2", "-fno-builtin", "-pthread"}, cflags...), src("distro.c"), "-lcrypto")
	lp := src("lp_distro.c")
	pack := func(name, target, line string) string {
		so := filepath.Join(fx.Dir, name+".so")
		testenv.CompileC(t, so, []string{"-shared", "-fPIC", "-O2", "-Wl,--build-id"}, lp)
		so = fx.PackFile(t, so, target, line)
		c, err := container.Open(so)
		if err != nil {
			t.Fatal(err)
		}
		if m := c.Apply.Funcs[0].Mechanism; m != container.MechEntry {
			t.Fatalf("%s: mechanism %v, want entry", name, m)
		}
		return so
	}
	d.libc = pack("lp_libc", distroLibc, "labs:labs_lp")
	d.crypto = pack("lp_crypto", distroCrypto, "OPENSSL_hexchar2int:hexchar2int_lp")
	return d
}

// distroStats are the counters of testdata/distro.c.
type distroStats struct{ labsOld, labsNew, hexOld, hexNew, wrong uint64 }

func askStats(t *testing.T, p *triggertest.Proc) distroStats {
	t.Helper()
	f := strings.Fields(p.Ask(t, "stats"))
	if len(f) != 5 {
		t.Fatalf("stats answer %q", f)
	}
	var v [5]uint64
	for i := range f {
		n, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		v[i] = n
	}
	return distroStats{v[0], v[1], v[2], v[3], v[4]}
}

// funcBytes reads n bytes at the function sym of the object lib (a path)
// in process pid.
func funcBytes(t *testing.T, pid int, lib, sym string, n int) (addr uint64, b []byte) {
	t.Helper()
	obj, err := elfsym.Open(lib)
	if err != nil {
		t.Fatal(err)
	}
	s, err := obj.Lookup(sym, elfsym.TypeFunc)
	if err != nil {
		t.Fatal(err)
	}
	tp, err := target.Open(pid)
	if err != nil {
		t.Fatal(err)
	}
	o := tp.Object(filepath.Base(lib))
	if o == nil {
		t.Fatalf("%s not mapped in %d", lib, pid)
	}
	addr = o.Bias + s.Offset
	b = make([]byte, n)
	if err := procfs.ReadMem(pid, addr, b); err != nil {
		t.Fatal(err)
	}
	return addr, b
}

// TestDistroLibraries_ApplyRevertUnderLoad replaces labs() of Debian's
// libc.so.6 and OPENSSL_hexchar2int() of its libcrypto.so.3, unmodified,
// in a process whose 8 threads call both in a loop and check every result,
// then reverts them: over 500 cycles, in both revert orders, no thread sees
// a wrong result or crashes, both behaviours are seen, and the code is
// byte for byte the original at the end.
func TestDistroLibraries_ApplyRevertUnderLoad(t *testing.T) {
	d := buildDistro(t)
	p := triggertest.Start(t, nil, d.bin)
	labsAt, labsOrig := funcBytes(t, p.PID, distroLibc, "labs", 16)
	hexAt, hexOrig := funcBytes(t, p.PID, distroCrypto, "OPENSSL_hexchar2int", 16)

	cycles := 500
	if testing.Short() {
		cycles = 50
	}
	var pauses []int64
	run := func(req Request) {
		t.Helper()
		rep := Run(t.Context(), p.PID, req, Options{Retries: 100, Timeout: 20 * time.Second})
		if rep.Result != report.Success {
			t.Fatalf("%s %s: %s %s", req.Action, filepath.Base(req.Container), rep.Result, rep.Reason)
		}
		pauses = append(pauses, rep.Timings.PauseUS)
	}
	var last distroStats
	for i := range cycles {
		run(apply(d.libc))
		run(apply(d.crypto))
		if i == 0 {
			// The entry now holds a jmp rel32 (e9) and nothing else changed.
			_, b := funcBytes(t, p.PID, distroLibc, "labs", 16)
			if b[0] != 0xe9 || !bytes.Equal(b[5:], labsOrig[5:]) {
				t.Fatalf("labs after apply: % x (was % x)", b, labsOrig)
			}
		}
		if i%50 == 0 {
			// Wait until the threads ran the replacements.
			deadline := time.Now().Add(10 * time.Second)
			for s := askStats(t, p); s.labsNew == last.labsNew || s.hexNew == last.hexNew; s = askStats(t, p) {
				if time.Now().After(deadline) {
					t.Fatalf("cycle %d: the replacements are not called: %+v", i, s)
				}
				time.Sleep(time.Millisecond)
			}
			last = askStats(t, p)
		}
		if i%2 == 0 {
			run(revert(d.libc))
			run(revert(d.crypto))
		} else {
			run(revert(d.crypto))
			run(revert(d.libc))
		}
	}
	s := askStats(t, p)
	if s.wrong != 0 || s.labsNew == 0 || s.hexNew == 0 || s.labsOld == 0 || s.hexOld == 0 {
		t.Fatalf("after %d cycles: %+v", cycles, s)
	}
	for _, f := range []struct {
		lib, sym string
		at       uint64
		orig     []byte
	}{{distroLibc, "labs", labsAt, labsOrig}, {distroCrypto, "OPENSSL_hexchar2int", hexAt, hexOrig}} {
		if at, b := funcBytes(t, p.PID, f.lib, f.sym, 16); at != f.at || !bytes.Equal(b, f.orig) {
			t.Errorf("%s after the last revert: % x, want % x", f.sym, b, f.orig)
		}
	}
	p.Untraced(t)
	slices.Sort(pauses)
	t.Logf("%d cycles, %d triggers: calls %+v; pause median %d µs, p99 %d µs, max %d µs", cycles, len(pauses), s,
		pauses[len(pauses)/2], pauses[len(pauses)*99/100], pauses[len(pauses)-1])
}

// TestDistroLibraries_SignalFrameInsideEntry: a thread interrupted by a
// signal at labs+3 (inside the 5 bytes the jump replaces) waits in its
// handler; its stack holds the saved instruction pointer that sigreturn
// will resume. The apply must not write the jump under it: it fails after
// its retries, and succeeds once the handler has returned; the thread never
// runs a torn instruction.
func TestDistroLibraries_SignalFrameInsideEntry(t *testing.T) {
	d := buildDistro(t)
	bin := filepath.Join(filepath.Dir(d.bin), "sigframe")
	b, err := os.ReadFile(filepath.Join("testdata", "sigframe.c"))
	if err != nil {
		t.Fatal(err)
	}
	src := bin + ".c"
	if err := os.WriteFile(src, b, 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.CompileC(t, bin, []string{"-O2", "-fno-builtin", "-pthread"}, src)
	p := triggertest.Start(t, nil, bin)
	if got := p.Ask(t, "catch"); got != "3" {
		t.Fatalf("catch: the handler saw labs+%s, want 3", got)
	}
	rep := trig(t, p.PID, apply(d.libc))
	if rep.Result != report.Error || !strings.Contains(rep.Reason, "stays inside the code to be patched") {
		t.Fatalf("apply over a saved instruction pointer: %s %q", rep.Result, rep.Reason)
	}
	p.Ask(t, "release")
	mustTrig(t, p.PID, apply(d.libc), report.Success)
	before := p.Ask(t, "count")
	deadline := time.Now().Add(60 * time.Second)
	for p.Ask(t, "count") == before {
		if time.Now().After(deadline) {
			t.Fatal("the worker stopped calling labs")
		}
		time.Sleep(time.Millisecond)
	}
	mustTrig(t, p.PID, revert(d.libc), report.Success)
	if got := p.Ask(t, "bad"); got != "0" {
		t.Fatalf("%s wrong results", got)
	}
	p.Untraced(t)
}

// TestDistroLibraries_Trampoline: the program reserves 4 GiB below its
// libraries, so the containers are mapped beyond the reach of a jmp rel32
// from libc and libcrypto. The jumps then go through trampolines in the
// free bytes after each library's code; under 8 calling threads the
// replacements are reached, reverts restore the original bytes, and a
// re-apply reuses the freed slots.
func TestDistroLibraries_Trampoline(t *testing.T) {
	d := buildDistro(t, "-DFAR")
	p := triggertest.Start(t, nil, d.bin)
	labsAt, labsOrig := funcBytes(t, p.PID, distroLibc, "labs", 16)
	_, hexOrig := funcBytes(t, p.PID, distroCrypto, "OPENSSL_hexchar2int", 16)
	tp, err := target.Open(p.PID)
	if err != nil {
		t.Fatal(err)
	}
	libc := tp.Object("libc.so.6")
	var last distroStats
	var slot uint64
	for i := range 20 {
		mustTrig(t, p.PID, apply(d.libc), report.Success)
		mustTrig(t, p.PID, apply(d.crypto), report.Success)
		_, b := funcBytes(t, p.PID, distroLibc, "labs", 16)
		if b[0] != 0xe9 {
			t.Fatalf("labs: % x", b)
		}
		to := labsAt + 5 + uint64(int64(int32(binary.LittleEndian.Uint32(b[1:]))))
		if !libc.Contains(to) {
			t.Fatalf("labs jumps to %#x, outside libc [%#x, %#x): the container was mapped within reach", to, libc.Start, libc.End)
		}
		tramp := make([]byte, 14)
		if err := procfs.ReadMem(p.PID, to, tramp); err != nil {
			t.Fatal(err)
		}
		dst := binary.LittleEndian.Uint64(tramp[6:])
		if !bytes.HasPrefix(tramp, []byte{0xff, 0x25, 0, 0, 0, 0}) || dst-labsAt < 1<<31 && labsAt-dst < 1<<31 {
			t.Fatalf("trampoline at %#x: % x (labs at %#x)", to, tramp, labsAt)
		}
		if i == 0 {
			slot = to
		} else if to != slot {
			t.Errorf("cycle %d: trampoline slot %#x, the first cycle used %#x", i, to, slot)
		}
		deadline := time.Now().Add(10 * time.Second)
		for s := askStats(t, p); s.labsNew == last.labsNew || s.hexNew == last.hexNew; s = askStats(t, p) {
			if time.Now().After(deadline) {
				t.Fatalf("cycle %d: the replacements are not called: %+v", i, s)
			}
			time.Sleep(time.Millisecond)
		}
		last = askStats(t, p)
		mustTrig(t, p.PID, revert(d.crypto), report.Success)
		mustTrig(t, p.PID, revert(d.libc), report.Success)
	}
	if s := askStats(t, p); s.wrong != 0 {
		t.Fatalf("%+v", s)
	}
	for _, f := range []struct {
		lib, sym string
		orig     []byte
	}{{distroLibc, "labs", labsOrig}, {distroCrypto, "OPENSSL_hexchar2int", hexOrig}} {
		if _, b := funcBytes(t, p.PID, f.lib, f.sym, 16); !bytes.Equal(b, f.orig) {
			t.Errorf("%s after the last revert: % x, want % x", f.sym, b, f.orig)
		}
	}
	p.Untraced(t)
}
