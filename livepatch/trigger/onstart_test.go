package trigger

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"ulp/livepatch/container"
	"ulp/livepatch/dsc"
	"ulp/livepatch/ledger"
	"ulp/livepatch/packer"
	"ulp/livepatch/report"
	"ulp/livepatch/target"
	"ulp/livepatch/trigger/triggertest"
)

// activeDir makes a patch-on-start folder (mode 0755, owned by the test's
// user) holding copies of the named containers of fx (and extra files).
func activeDir(t *testing.T, fx *triggertest.Fixture, names []string, extra map[string][]byte) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "active")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		b, err := os.ReadFile(fx.LP[n])
		if err != nil {
			t.Fatal(err)
		}
		extra[n+".so"] = b
	}
	for n, b := range extra {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func ring(t *testing.T, pid int) string {
	t.Helper()
	tp, err := target.Open(pid)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := tp.ReadRing(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

// TestPatchOnStart: the runtime applies the containers of the active folder
// before main (the first call runs the new code), stacking them in name
// order, writes a ledger the agent decodes, and the agent reverts those
// patches like its own. A broken container there is logged and skipped;
// the process starts anyway.
func TestPatchOnStart(t *testing.T) {
	for _, cf := range []string{"-fcf-protection=none", "-fcf-protection=full"} {
		t.Run(cf, func(t *testing.T) {
			fx := triggertest.Build(t, cf)
			dir := activeDir(t, fx, []string{"lp200", "lp300", "main", "misc", "two"}, map[string][]byte{
				"broken.so": []byte("\x7fELF not really"),
				"notes.txt": []byte("ignored: not .so"),
			})
			p := triggertest.Start(t, []string{"LIBPULP_ACTIVE_DIR=" + dir}, fx.App)
			p.Expect(t, map[string]string{"value": "300", "intra": "301", "hidden": "60", "args": "3960",
				"counter": "1042", "tls": "2009", "page": "8", "two": "22", "main": "11"})

			tp, err := target.Open(p.PID)
			if err != nil {
				t.Fatal(err)
			}
			l, err := tp.ReadLedger(t.Context())
			if err != nil {
				t.Fatalf("the ledger written by the runtime: %v", err)
			}
			var got []string
			for _, pt := range l.Patches {
				got = append(got, filepath.Base(pt.Container)+"→"+pt.Target)
				c, err := container.Open(filepath.Join(dir, filepath.Base(pt.Container)))
				if err != nil || c.Apply.ID != pt.ID || pt.AppliedAt.IsZero() || len(pt.Redirects) != len(c.Apply.Funcs) ||
					!slices.Equal(pt.Labels, c.Apply.Labels) || len(pt.Labels) == 0 {
					t.Errorf("patch %+v (container %v)", pt, err)
				}
			}
			if want := "lp200.so→libcalc.so.1 lp300.so→libcalc.so.1 main.so→app misc.so→libcalc.so.1 two.so→libtwo.so.1"; strings.Join(got, " ") != want {
				t.Errorf("ledger patches %v, want %s", got, want)
			}
			calc := tp.Object("libcalc.so.1")
			for _, s := range l.Stacks {
				if len(s.Entries) == 2 && s.Addr != l.Patches[0].Redirects[0].Old {
					t.Errorf("stack %#x has 2 entries", s.Addr)
				}
			}
			if s := l.Stack(l.Patches[0].Redirects[0].Old); s == nil || len(s.Entries) != 2 || s.Addr < calc.Bias {
				t.Errorf("calc_value stack %+v", s)
			}
			msgs := ring(t, p.PID)
			for _, w := range []string{"applied " + dir + "/lp200.so: 1 function(s) of libcalc.so.1",
				"skipped " + dir + "/broken.so: "} {
				if !strings.Contains(msgs, w) {
					t.Errorf("ring lacks %q:\n%s", w, msgs)
				}
			}
			if strings.Contains(msgs, "notes.txt") {
				t.Errorf("ring mentions a file that is not .so:\n%s", msgs)
			}

			// The agent treats them as its own.
			mustTrig(t, p.PID, apply(fx.LP["lp300"]), report.Skipped)
			mustTrig(t, p.PID, revert(fx.LP["lp300"]), report.Success)
			p.Expect(t, map[string]string{"value": "200"})
			mustTrig(t, p.PID, Request{Action: report.RevertAll, Lib: "libcalc.so.1"}, report.Success)
			p.Expect(t, map[string]string{"value": "100", "intra": "101", "hidden": "50", "args": "105",
				"counter": "42", "tls": "9", "page": "7", "two": "22"})
			mustTrig(t, p.PID, Request{Action: report.RevertAll, Lib: "libtwo.so.1"}, report.Success)
			mustTrig(t, p.PID, revert(fx.LP["main"]), report.Success)
			p.Expect(t, map[string]string{"two": "2", "main": "1"})
			p.Untraced(t)
		})
	}
}

// TestPatchOnStart_Refused: an unsafe folder, or a container whose target
// has another build-id, changes nothing, and the process starts.
func TestPatchOnStart_Refused(t *testing.T) {
	fx := triggertest.Build(t)
	other := triggertest.Build(t, "-DOTHER_BUILD") // same library, another build-id
	dir := activeDir(t, other, []string{"lp200"}, map[string][]byte{})
	p := triggertest.Start(t, []string{"LIBPULP_ACTIVE_DIR=" + dir}, fx.App)
	p.Expect(t, map[string]string{"value": "100"})
	if msgs := ring(t, p.PID); !strings.Contains(msgs, "lp200.so: build-id mismatch") {
		t.Errorf("ring:\n%s", msgs)
	}

	dir = activeDir(t, fx, []string{"lp200"}, map[string][]byte{})
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	p = triggertest.Start(t, []string{"LIBPULP_ACTIVE_DIR=" + dir}, fx.App)
	p.Expect(t, map[string]string{"value": "100"})
	if msgs := ring(t, p.PID); !strings.Contains(msgs, "unsafe folder "+dir) {
		t.Errorf("ring:\n%s", msgs)
	}
	tp, err := target.Open(p.PID)
	if err != nil {
		t.Fatal(err)
	}
	if l, err := tp.ReadLedger(t.Context()); err != nil || !l.Equal(&ledger.Ledger{}) {
		t.Errorf("ledger %+v, %v", l, err)
	}

	// Without the folder nothing happens (and a trigger works as ever).
	p = triggertest.Start(t, []string{"LIBPULP_ACTIVE_DIR=" + filepath.Join(dir, "missing")}, fx.App)
	mustTrig(t, p.PID, apply(fx.LP["lp200"]), report.Success)
	p.Expect(t, map[string]string{"value": "200"})
}

// TestPatchOnStart_Labels: the runtime finds the same bug labels in the
// comments as container.Labels (case, word boundaries, repeats).
func TestPatchOnStart_Labels(t *testing.T) {
	fx := triggertest.Build(t)
	comments := []string{
		"cve-2024-12345 and bsc#1, not xbsc#2 nor bsc#3a nor cve-2024-123 nor jsc#-1 nor cve-20245-1234",
		"Jsc#sle-20049; boo#77 (CVE-2024-12345 again) bsc#1_ jsc#PED-1. bsc#",
		"_cve-2024-1111 cve-2024-2222_ BSC#0042 Cve-2023-99999-1",
	}
	so := filepath.Join(fx.Dir, "labels.so")
	triggertest.Compile(t, so, []string{"-shared", "-fPIC", "-O2", "-Wl,--build-id", "-DVALUE=200"}, "lp_value.c")
	body := "! " + strings.Join(comments, "\n! ") + "\n" + so + "\n@" + fx.Calc + "\ncalc_value:calc_value_lp\n"
	dscPath := filepath.Join(fx.Dir, "labels.dsc")
	if err := os.WriteFile(dscPath, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := dsc.Parse(dscPath, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := packer.Pack(d, packer.Options{Out: so}); err != nil {
		t.Fatal(err)
	}
	c, err := container.Open(so)
	if err != nil {
		t.Fatal(err)
	}
	fx.LP["labels"] = so
	dir := activeDir(t, fx, []string{"labels"}, map[string][]byte{})
	p := triggertest.Start(t, []string{"LIBPULP_ACTIVE_DIR=" + dir}, fx.App)
	p.Expect(t, map[string]string{"value": "200"})
	tp, err := target.Open(p.PID)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tp.ReadLedger(t.Context())
	if err != nil || len(l.Patches) != 1 {
		t.Fatalf("ledger %+v, %v", l, err)
	}
	if got, want := l.Patches[0].Labels, c.Apply.Labels; !slices.Equal(got, want) || len(want) < 5 {
		t.Errorf("runtime's labels %q, container.Labels %q", got, want)
	}
}

// TestPatchOnStart_Hostile: damaged containers in the folder (random bytes
// of the .ulp payload and of its section header replaced, files cut short)
// never stop a process from starting; each is applied or logged as
// skipped, and the ledger the runtime writes stays one the agent decodes.
func TestPatchOnStart_Hostile(t *testing.T) {
	fx := triggertest.Build(t)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	files := map[string][]byte{}
	for _, base := range []string{"misc", "lp200"} {
		b, err := os.ReadFile(fx.LP[base])
		if err != nil {
			t.Fatal(err)
		}
		ef, err := elf.Open(fx.LP[base])
		if err != nil {
			t.Fatal(err)
		}
		sec := ef.Section(".ulp")
		ef.Close()
		if sec == nil {
			t.Fatal("no .ulp")
		}
		shoff := binary.LittleEndian.Uint64(b[0x28:])
		var hdr int // the .ulp section header
		for i := range int(binary.LittleEndian.Uint16(b[0x3c:])) {
			if binary.LittleEndian.Uint64(b[int(shoff)+64*i+24:]) == sec.Offset {
				hdr = int(shoff) + 64*i
			}
		}
		for i := range 60 {
			m := bytes.Clone(b)
			for range 1 + rng.IntN(3) {
				if rng.IntN(4) == 0 {
					m[hdr+24+rng.IntN(16)] = byte(rng.Uint32()) // sh_offset, sh_size
				} else {
					m[int(sec.Offset)+rng.IntN(int(sec.Size))] = byte(rng.Uint32())
				}
			}
			files[fmt.Sprintf("%s-flip%02d.so", base, i)] = m
		}
		for i := range 10 {
			files[fmt.Sprintf("%s-cut%02d.so", base, i)] = b[:rng.IntN(len(b))]
		}
	}
	dir := activeDir(t, fx, nil, files)
	p := triggertest.Start(t, []string{"LIBPULP_ACTIVE_DIR=" + dir}, fx.App)
	msgs := ring(t, p.PID)
	if n := strings.Count(msgs, "patch-on-start: "); n < 40 { // the ring keeps the last 8 KiB
		t.Errorf("%d patch-on-start lines:\n%s", n, msgs)
	}
	tp, err := target.Open(p.PID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tp.ReadLedger(t.Context()); err != nil {
		t.Errorf("ledger: %v", err)
	}
	p.Untraced(t)
}

// TestPatchOnStart_DistroLibraries: containers for Debian's own libc.so.6
// and libcrypto.so.3 (the entry mechanism: a 5-byte jump over the entry)
// applied at start; every call the threads make is to the replacements
// from the first, and the agent's revert-all restores the original bytes.
func TestPatchOnStart_DistroLibraries(t *testing.T) {
	d := buildDistro(t)
	plain := triggertest.Start(t, nil, d.bin)
	_, labsOrig := funcBytes(t, plain.PID, distroLibc, "labs", 16)
	_, hexOrig := funcBytes(t, plain.PID, distroCrypto, "OPENSSL_hexchar2int", 16)
	files := map[string][]byte{}
	for _, so := range []string{d.libc, d.crypto} {
		b, err := os.ReadFile(so)
		if err != nil {
			t.Fatal(err)
		}
		files[filepath.Base(so)] = b
	}
	dir := activeDir(t, &triggertest.Fixture{}, nil, files)
	p := triggertest.Start(t, []string{"LIBPULP_ACTIVE_DIR=" + dir}, d.bin)
	deadline := time.Now().Add(10 * time.Second)
	s := askStats(t, p)
	for ; s.labsNew == 0 || s.hexNew == 0; s = askStats(t, p) {
		if time.Now().After(deadline) {
			t.Fatalf("the replacements are not called: %+v\n%s", s, ring(t, p.PID))
		}
		time.Sleep(time.Millisecond)
	}
	// (hexOld also counts the characters that are not hex digits, for
	// which both versions return -1.)
	if s.labsOld != 0 || s.wrong != 0 {
		t.Errorf("calls to the old labs or wrong results: %+v", s)
	}
	tp, err := target.Open(p.PID)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tp.ReadLedger(t.Context())
	if err != nil || len(l.Patches) != 2 || len(l.Stacks) != 2 {
		t.Fatalf("ledger %+v, %v", l, err)
	}
	for _, st := range l.Stacks {
		if st.Mechanism != container.MechEntry || len(st.Orig) != 5 {
			t.Errorf("stack %+v", st)
		}
	}
	for _, lib := range []string{"libc.so.6", "libcrypto.so.3"} {
		mustTrig(t, p.PID, Request{Action: report.RevertAll, Lib: lib}, report.Success)
	}
	if _, b := funcBytes(t, p.PID, distroLibc, "labs", 16); !bytes.Equal(b, labsOrig) {
		t.Errorf("labs after revert-all: % x, want % x", b, labsOrig)
	}
	if _, b := funcBytes(t, p.PID, distroCrypto, "OPENSSL_hexchar2int", 16); !bytes.Equal(b, hexOrig) {
		t.Errorf("OPENSSL_hexchar2int after revert-all: % x, want % x", b, hexOrig)
	}
	p.Untraced(t)
}
