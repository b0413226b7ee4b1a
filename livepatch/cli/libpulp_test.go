package cli

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"ulp/internal/testenv"
	"ulp/livepatch/elfsym"
	"ulp/livepatch/report"
	"ulp/livepatch/trigger/triggertest"
)

// libpulpUnit is one function replacement of a libpulp-format container.
type libpulpUnit struct {
	old, new string
	oldOff   uint64
}

// cstr appends a u32 length counting the NUL, the string and its NUL, as
// libpulp's packer writes strings.
func cstr(b []byte, s string) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(s)+1))
	return append(append(b, s...), 0)
}

// libpulpSections encodes .ulp and .ulp.rev in SUSE libpulp's layout
// (research notes: libpulp.md §3.2, §3.3), from the documented layout
// only: type, patch id, build-id, target name, units, dependencies (none),
// references (none).
func libpulpSections(id [32]byte, buildID []byte, target string, units []libpulpUnit) (apply, revert []byte) {
	le := binary.LittleEndian
	apply = append([]byte{1}, id[:]...)
	apply = le.AppendUint32(apply, uint32(len(buildID)))
	apply = append(apply, buildID...)
	apply = cstr(apply, target)
	apply = le.AppendUint32(apply, uint32(len(units)))
	for _, u := range units {
		apply = cstr(apply, u.old)
		apply = cstr(apply, u.new)
		apply = le.AppendUint64(apply, u.oldOff)
	}
	apply = le.AppendUint32(apply, 0) // dependencies
	apply = le.AppendUint32(apply, 0) // references
	revert = append([]byte{2}, id[:]...)
	revert = le.AppendUint32(revert, uint32(len(buildID)))
	revert = append(revert, buildID...)
	revert = le.AppendUint32(revert, uint32(len(target))) // no NUL here, as libpulp writes it
	revert = append(revert, target...)
	return apply, revert
}

// libpulpContainer builds, with objcopy as libpulp's packer does, a
// libpulp-format container replacing calc_value of the fixture's libcalc
// by a livepatch returning value.
func libpulpContainer(t *testing.T, fx *triggertest.Fixture, value int) string {
	t.Helper()
	so := filepath.Join(fx.Dir, fmt.Sprintf("libpulp_lp%d.so", value))
	triggertest.Compile(t, so, []string{"-shared", "-fPIC", "-O2", "-Wl,--build-id", fmt.Sprintf("-DVALUE=%d", value)}, "lp_value.c")
	lib, err := elfsym.Open(fx.Calc)
	if err != nil {
		t.Fatal(err)
	}
	old, err := lib.Lookup("calc_value", elfsym.TypeFunc)
	if err != nil {
		t.Fatal(err)
	}
	var id [32]byte
	rand.Read(id[:])
	apply, revert := libpulpSections(id, lib.BuildID, "libcalc.so.1", []libpulpUnit{{"calc_value", "calc_value_lp", old.Offset}})
	args := []string{}
	for name, data := range map[string][]byte{".ulp": apply, ".ulp.rev": revert, ".ulp.comments": []byte("fixes bsc#1200316 and CVE-2099-0002\x00")} {
		f := filepath.Join(fx.Dir, fmt.Sprintf("%d%s", value, name))
		if err := os.WriteFile(f, data, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--add-section", name+"="+f)
	}
	if out, err := exec.Command("objcopy", append(args, so)...).CombinedOutput(); err != nil {
		t.Fatalf("objcopy: %v\n%s", err, out)
	}
	return so
}

// TestLibpulpContainer: a container in SUSE libpulp's format, built from
// its documented layout for a gcc-built library (with and without an
// endbr64 before the pad's NOPs), is read by dump and applied, listed,
// checked and reverted by trigger on a real process.
func TestLibpulpContainer(t *testing.T) {
	testenv.Require(t, testenv.Ptrace, testenv.CC)
	for _, cflags := range [][]string{nil, {"-fcf-protection=full"}} {
		t.Run(strings.Join(append([]string{"cflags"}, cflags...), " "), func(t *testing.T) {
			fx := triggertest.Build(t, cflags...)
			lp := libpulpContainer(t, fx, 250)
			out, errOut, code := inspectRun(t, "dump", lp)
			if code != report.ExitOK || !strings.Contains(out, "target:             libcalc.so.1\n") ||
				!strings.Contains(out, "calc_value -> calc_value_lp") || !strings.Contains(out, "labels:             bsc#1200316 CVE-2099-0002") ||
				!strings.Contains(out, "\nformat:             libpulp ") {
				t.Fatalf("dump: exit %d\n%s%s", code, out, errOut)
			}
			p := triggertest.Start(t, nil, fx.App)
			pid := strconv.Itoa(p.PID)
			if out, errOut, code := inspectRun(t, "trigger", "-p", pid, lp); code != report.ExitOK || out != "SUCCESS\n" {
				t.Fatalf("trigger: exit %d, %q %q", code, out, errOut)
			}
			p.Expect(t, map[string]string{"value": "250"})
			if out, _, code := inspectRun(t, "check", "-p", pid, lp); code != report.ExitOK {
				t.Errorf("check: exit %d, %q", code, out)
			}
			if out, _, _ := inspectRun(t, "patches", "-p", pid); !strings.Contains(out, "livepatch: libpulp_lp250.so loaded on ") ||
				!strings.Contains(out, "bug labels: bsc#1200316, CVE-2099-0002") {
				t.Errorf("patches:\n%s", out)
			}
			// Stacked with one of ulp's own containers, then reverted.
			if out, errOut, code := inspectRun(t, "trigger", "-p", pid, fx.LP["lp300"]); code != report.ExitOK {
				t.Fatalf("trigger lp300: exit %d, %q %q", code, out, errOut)
			}
			p.Expect(t, map[string]string{"value": "300"})
			if out, errOut, code := inspectRun(t, "trigger", "-p", pid, "--revert", fx.LP["lp300"]); code != report.ExitOK {
				t.Fatalf("revert lp300: exit %d, %q %q", code, out, errOut)
			}
			p.Expect(t, map[string]string{"value": "250"})
			if out, errOut, code := inspectRun(t, "trigger", "-p", pid, "--revert", lp); code != report.ExitOK || out != "SUCCESS\n" {
				t.Fatalf("revert: exit %d, %q %q", code, out, errOut)
			}
			p.Expect(t, map[string]string{"value": "100"})
			p.Untraced(t)
		})
	}
}

// TestLibpulpContainer_Malformed: a libpulp-format section that lies is
// refused as an invalid container (exit status 2) and nothing is touched.
func TestLibpulpContainer_Malformed(t *testing.T) {
	testenv.Require(t, testenv.CC)
	var id [32]byte
	good, _ := libpulpSections(id, bytes.Repeat([]byte{1}, 20), "libcalc.so.1", []libpulpUnit{{"calc_value", "calc_value_lp", 0x1100}})
	tests := map[string][]byte{
		"truncated":       good[:len(good)-3],
		"trailing bytes":  append(bytes.Clone(good), 0),
		"missing symbol":  bytes.Replace(bytes.Clone(good), []byte("calc_value_lp\x00"), []byte("nosuch_fn_lp\x00"), 1),
		"huge unit count": append(bytes.Clone(good[:len(good)-8-4-14-4-11-4-4]), 0xff, 0xff, 0xff, 0x7f),
	}
	for name, apply := range tests {
		t.Run(name, func(t *testing.T) {
			so := filepath.Join(t.TempDir(), "bad.so")
			triggertest.Compile(t, so, []string{"-shared", "-fPIC", "-O2", "-Wl,--build-id", "-DVALUE=1"}, "lp_value.c")
			_, revert := libpulpSections(id, bytes.Repeat([]byte{1}, 20), "libcalc.so.1", nil)
			f1, f2 := so+".ulp", so+".rev"
			os.WriteFile(f1, apply, 0o644)
			os.WriteFile(f2, revert, 0o644)
			if out, err := exec.Command("objcopy", "--add-section", ".ulp="+f1, "--add-section", ".ulp.rev="+f2, so).CombinedOutput(); err != nil {
				t.Fatalf("objcopy: %v\n%s", err, out)
			}
			if out, errOut, code := inspectRun(t, "dump", so); code != report.ExitUsage {
				t.Errorf("dump: exit %d, %q %q", code, out, errOut)
			}
			if _, errOut, code := inspectRun(t, "trigger", "-p", strconv.Itoa(os.Getpid()), so); code != report.ExitUsage || !strings.Contains(errOut, "invalid container") {
				t.Errorf("trigger: exit %d, %q", code, errOut)
			}
		})
	}
}

// TestLibpulpTools: with SUSE's prebuilt libpulp 0.3.17, a container packed
// by its `ulp packer` is applied and reverted by this ulp, and this ulp's
// packer packs against the JSON of its `ulp extract`.
func TestLibpulpTools(t *testing.T) {
	testenv.Require(t, testenv.Ptrace, testenv.CC, testenv.Libpulp)
	suse := filepath.Join(testenv.LibpulpDir(), "bin", "ulp")
	fx := triggertest.Build(t)
	p := triggertest.Start(t, nil, fx.App)
	pid := strconv.Itoa(p.PID)

	// libpulp's packer, on a livepatch and the library, as its users do.
	so := filepath.Join(fx.Dir, "suse_lp350.so")
	triggertest.Compile(t, so, []string{"-shared", "-fPIC", "-O2", "-Wl,--build-id", "-DVALUE=350"}, "lp_value.c")
	desc := filepath.Join(fx.Dir, "suse_lp350.dsc")
	if err := os.WriteFile(desc, []byte("! fixes bsc#1200316\n"+so+"\n@"+fx.Calc+"\ncalc_value:calc_value_lp\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(suse, "packer", desc).CombinedOutput(); err != nil {
		t.Fatalf("libpulp's ulp packer: %v\n%s", err, out)
	}
	out, errOut, code := inspectRun(t, "dump", so)
	if code != report.ExitOK || !strings.Contains(out, "format:             libpulp") {
		t.Fatalf("dump of libpulp's container: exit %d\n%s%s", code, out, errOut)
	}
	if out, errOut, code := inspectRun(t, "trigger", "-p", pid, so); code != report.ExitOK || out != "SUCCESS\n" {
		t.Fatalf("trigger of libpulp's container: exit %d, %q %q", code, out, errOut)
	}
	p.Expect(t, map[string]string{"value": "350"})
	if out, errOut, code := inspectRun(t, "trigger", "-p", pid, "--revert", so); code != report.ExitOK || out != "SUCCESS\n" {
		t.Fatalf("revert of libpulp's container: exit %d, %q %q", code, out, errOut)
	}
	p.Expect(t, map[string]string{"value": "100"})

	// libpulp's extract JSON as the target of this ulp's packer.
	dump := filepath.Join(fx.Dir, "libcalc.so.1.json")
	if out, err := exec.Command(suse, "extract", fx.Calc, "-o", dump).CombinedOutput(); err != nil {
		t.Fatalf("libpulp's ulp extract: %v\n%s", err, out)
	}
	lp := filepath.Join(fx.Dir, "ulp_lp450.so")
	triggertest.Compile(t, lp, []string{"-shared", "-fPIC", "-O2", "-Wl,--build-id", "-DVALUE=450"}, "lp_value.c")
	desc = filepath.Join(fx.Dir, "ulp_lp450.dsc")
	if err := os.WriteFile(desc, []byte(lp+"\n@"+dump+"\ncalc_value:calc_value_lp\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := inspectRun(t, "packer", desc); code != report.ExitOK {
		t.Fatalf("packer against libpulp's dump: exit %d, %q %q", code, out, errOut)
	}
	if out, errOut, code := inspectRun(t, "trigger", "-p", pid, lp); code != report.ExitOK || out != "SUCCESS\n" {
		t.Fatalf("trigger: exit %d, %q %q", code, out, errOut)
	}
	p.Expect(t, map[string]string{"value": "450"})
	if out, errOut, code := inspectRun(t, "trigger", "-p", pid, "--revert", lp); code != report.ExitOK {
		t.Fatalf("revert: exit %d, %q %q", code, out, errOut)
	}
	p.Expect(t, map[string]string{"value": "100"})
}

// TestVersionedLibrary: a library installed as libcalc.so.1.0.0 behind the
// link libcalc.so.1 (as libtool and distributions install them; the
// process maps the versioned file) takes a container that names it by the
// link, as libpulp's do, and lists its patch under the file.
func TestVersionedLibrary(t *testing.T) {
	testenv.Require(t, testenv.Ptrace, testenv.CC)
	fx := triggertest.Build(t)
	versioned := fx.Calc + ".0.0"
	if err := os.Rename(fx.Calc, versioned); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Base(versioned), fx.Calc); err != nil {
		t.Fatal(err)
	}
	p := triggertest.Start(t, nil, fx.App)
	pid := strconv.Itoa(p.PID)
	for _, lp := range []string{fx.LP["lp200"], libpulpContainer(t, fx, 260)} {
		if out, errOut, code := inspectRun(t, "trigger", "-p", pid, lp); code != report.ExitOK || out != "SUCCESS\n" {
			t.Fatalf("trigger %s: exit %d, %q %q", lp, code, out, errOut)
		}
	}
	p.Expect(t, map[string]string{"value": "260"})
	out, _, code := inspectRun(t, "patches", "-p", pid)
	if want := "    in " + versioned + ":\n      livepatch: lp200.so loaded on "; code != report.ExitOK || !strings.Contains(out, want) || strings.Contains(out, "(not loaded)") {
		t.Errorf("patches: exit %d\n%s\nwant %q", code, out, want)
	}
	if out, errOut, code := inspectRun(t, "trigger", "-p", pid, "--revert-all=libcalc.so.1"); code != report.ExitOK || out != "SUCCESS\n" {
		t.Fatalf("revert-all: exit %d, %q %q", code, out, errOut)
	}
	p.Expect(t, map[string]string{"value": "100"})
}
