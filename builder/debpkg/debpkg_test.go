package debpkg_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"ulp/builder/debpkg"
	"ulp/internal/testenv"
	"ulp/livepatch/container"
	"ulp/livepatch/trigger/triggertest"
)

// run runs a command with env added, failing t on error; it returns the
// combined output.
func run(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// field returns one control field of the .deb.
func field(t *testing.T, deb, name string) string {
	t.Helper()
	return strings.TrimSpace(run(t, nil, "dpkg-deb", "-f", deb, name))
}

// contents lists the regular files of the .deb as "MODE OWNER PATH".
func contents(t *testing.T, deb string) []string {
	t.Helper()
	var out []string
	for line := range strings.Lines(run(t, nil, "dpkg-deb", "-c", deb)) {
		f := strings.Fields(line)
		if len(f) >= 6 && strings.HasPrefix(f[0], "-") {
			out = append(out, f[0]+" "+f[1]+" "+strings.TrimPrefix(f[5], "."))
		}
	}
	return out
}

// ulpDeb runs the agent's `ulp deb` with args and returns its output.
func ulpDeb(t *testing.T, args ...string) string {
	t.Helper()
	return run(t, nil, testenv.Artifact(t, "ulp"), append([]string{"deb"}, args...)...)
}

// TestDeb wraps fixture containers into a .deb and checks it with
// dpkg-deb: files, modes, control fields, description and scripts; and the
// inputs it refuses.
func TestDeb(t *testing.T) {
	testenv.Require(t, testenv.Build, testenv.CC)
	fx := triggertest.Build(t)
	dir := t.TempDir()
	deb := filepath.Join(dir, "lp.deb")
	out := ulpDeb(t, "--unpinned", "--name", "ulp-livepatch-calc", "--version", "1:2.0-1~x1",
		"--maintainer", "Jane Doe <jane@example.org>", "-o", deb, fx.LP["lp200"], fx.LP["two"])
	if !strings.Contains(out, "wrote "+deb) || !strings.Contains(out, "Depends: ulp\n") {
		t.Errorf("ulp deb printed:\n%s", out)
	}
	calc, err := container.Open(fx.LP["lp200"])
	if err != nil {
		t.Fatal(err)
	}
	two, err := container.Open(fx.LP["two"])
	if err != nil {
		t.Fatal(err)
	}
	base := debpkg.Root + "/ulp-livepatch-calc"
	want := []string{
		"-rw-r--r-- root/root " + base + "/libcalc.so.1/ulp-livepatch-calc_lp200.so",
		"-rw-r--r-- root/root " + base + "/libtwo.so.1/ulp-livepatch-calc_two.so",
	}
	if got := contents(t, deb); !slices.Equal(got, want) {
		t.Errorf("dpkg-deb -c:\n%q\nwant\n%q", got, want)
	}
	provides := fmt.Sprintf("ulp-livepatch-buildid-%x, ulp-livepatch-buildid-%x", calc.Apply.Target.BuildID, two.Apply.Target.BuildID)
	for name, value := range map[string]string{
		"Package":      "ulp-livepatch-calc",
		"Version":      "1:2.0-1~x1",
		"Architecture": "amd64",
		"Maintainer":   "Jane Doe <jane@example.org>",
		"Depends":      "ulp",
		"Provides":     provides,
		"Conflicts":    provides,
		"Replaces":     provides,
	} {
		if got := field(t, deb, name); got != value {
			t.Errorf("%s: %q, want %q", name, got, value)
		}
	}
	desc := field(t, deb, "Description")
	for _, s := range []string{"livepatches: CVE-2099-0001\n", fmt.Sprintf("ulp-livepatch-calc_lp200.so: libcalc.so.1 (build-id %x): CVE-2099-0001", calc.Apply.Target.BuildID)} {
		if !strings.Contains(desc, s) {
			t.Errorf("Description lacks %q:\n%s", s, desc)
		}
	}
	// The bytes installed are the container's.
	x := filepath.Join(dir, "x")
	run(t, nil, "dpkg-deb", "-x", deb, x)
	b, _ := os.ReadFile(filepath.Join(x, base, "libcalc.so.1/ulp-livepatch-calc_lp200.so"))
	if orig, _ := os.ReadFile(fx.LP["lp200"]); string(b) != string(orig) {
		t.Errorf("packaged container differs from %s", fx.LP["lp200"])
	}
	// With SOURCE_DATE_EPOCH, the same inputs give the same bytes.
	var same [2][]byte
	for i := range same {
		p := filepath.Join(dir, fmt.Sprintf("repro%d.deb", i))
		run(t, []string{"SOURCE_DATE_EPOCH=1700000000"}, testenv.Artifact(t, "ulp"), "deb", "--unpinned", "--name", "ulp-livepatch-calc", "-o", p, fx.LP["lp200"])
		same[i], _ = os.ReadFile(p)
	}
	if len(same[0]) == 0 || string(same[0]) != string(same[1]) {
		t.Errorf("two packages of the same inputs with SOURCE_DATE_EPOCH differ (%d and %d bytes)", len(same[0]), len(same[1]))
	}
	if l := run(t, []string{"TZ=UTC"}, "dpkg-deb", "-c", filepath.Join(dir, "repro0.deb")); !strings.Contains(l, " 2023-11-14 22:13 ./usr/lib/ulp/livepatches/") {
		t.Errorf("dpkg-deb -c shows other times than SOURCE_DATE_EPOCH's 2023-11-14 22:13:\n%s", l)
	}

	// A signed container keeps its signature: the package holds its bytes.
	ulp := testenv.Artifact(t, "ulp")
	key := filepath.Join(dir, "vendor")
	signed := filepath.Join(dir, "signed.so")
	run(t, nil, ulp, "keygen", key)
	run(t, nil, ulp, "sign", "--key", key+".key", "-o", signed, fx.LP["lp300"])
	sdeb := filepath.Join(dir, "signed.deb")
	ulpDeb(t, "--unpinned", "--name", "ulp-livepatch-signed", "-o", sdeb, signed)
	sx := filepath.Join(dir, "sx")
	run(t, nil, "dpkg-deb", "-x", sdeb, sx)
	run(t, nil, ulp, "verify", "--pub", key+".pub", filepath.Join(sx, debpkg.Root, "ulp-livepatch-signed/libcalc.so.1/ulp-livepatch-signed_signed.so"))

	ctl := filepath.Join(dir, "ctl")
	run(t, nil, "dpkg-deb", "-e", deb, ctl)
	for _, s := range []string{"postinst", "prerm"} {
		fi, err := os.Stat(filepath.Join(ctl, s))
		if err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("%s: %v, %v", s, fi, err)
			continue
		}
		run(t, nil, "sh", "-n", filepath.Join(ctl, s))
	}
	if b, _ := os.ReadFile(filepath.Join(ctl, "postinst")); !strings.Contains(string(b), "--revert-all='libtwo.so.1' '"+base+"/libtwo.so.1/*.so'") {
		t.Errorf("postinst:\n%s", b)
	}

	// Refusals: exit status 2 and a reason, no file written.
	bad := filepath.Join(dir, "bad name.so")
	if err := os.WriteFile(bad, b, 0o644); err != nil {
		t.Fatal(err)
	}
	notContainer := filepath.Join(dir, "plain.so")
	if err := os.WriteFile(notContainer, []byte("\x7fELF not really"), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo.so")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		why  string
	}{
		{[]string{"--unpinned", "--name", "ok-name", fifo}, "not a regular file (a FIFO)"},
		{[]string{"--unpinned", "--name", "ok-name", dir}, "not a regular file (a directory)"},
		{[]string{"--unpinned", "--name", "Bad_Name", fx.LP["lp200"]}, "package name"},
		{[]string{"--unpinned", "--name", "ok-name", "--version", "one", fx.LP["lp200"]}, "version"},
		{[]string{"--unpinned", "--name", "ok-name", "--maintainer", "x\nDepends: evil <a@b>", fx.LP["lp200"]}, "maintainer"},
		{[]string{"--unpinned", fx.LP["lp200"]}, "no package name"},
		{[]string{"--unpinned", "--name", "ok-name", bad}, "file name"},
		{[]string{"--unpinned", "--name", "ok-name", notContainer}, "not an ELF"},
		{[]string{"--unpinned", "--name", "ok-name", fx.LP["lp200"], fx.LP["lp200"]}, "same file name"},
		{[]string{"--name", "ok-name", fx.LP["lp200"]}, "no installed package holds the target library libcalc.so.1"},
		{[]string{"--depends-on", "libssl3", fx.LP["lp200"]}, "PACKAGE=VERSION"},
		{[]string{}, "at least one"},
	} {
		cmd := exec.Command(testenv.Artifact(t, "ulp"), append([]string{"deb", "-o", filepath.Join(dir, "refused.deb")}, tc.args...)...)
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), tc.why) {
			t.Errorf("ulp deb %q: %v\n%s\nwant exit status 2 and %q", tc.args, err, out, tc.why)
		}
		if _, err := os.Stat(filepath.Join(dir, "refused.deb")); err == nil {
			t.Fatalf("ulp deb %q wrote a package", tc.args)
		}
	}
}

// lockDpkg holds, until t ends, a lock that every test process taking
// packages in and out of this machine's dpkg database takes (two `go test`
// runs of this package at once would install and purge the same packages
// under each other).
func lockDpkg(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "ulp-debpkg-test.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() }) // releases the lock, after the packages' cleanups ran
	for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Since(start) > 10*time.Minute {
			t.Fatalf("lock %s: %v", f.Name(), err)
		}
	}
}

// dpkgInstalled reports whether package name is installed.
func dpkgInstalled(name string) bool {
	out, err := exec.Command("dpkg-query", "-W", "-f", "${Status}", name).Output()
	return err == nil && strings.Contains(string(out), "install ok installed")
}

// install installs the .deb with dpkg -i and env, and purges package name
// when t ends.
func install(t *testing.T, env []string, deb, name string) string {
	t.Helper()
	t.Cleanup(func() {
		if dpkgInstalled(name) {
			if out, err := exec.Command("dpkg", "-P", name).CombinedOutput(); err != nil {
				t.Errorf("dpkg -P %s: %v\n%s", name, err, out)
			}
		}
	})
	return run(t, env, "dpkg", "-i", deb)
}

// installULP installs the project's own package, built by `make deb` from
// the artifacts already built, unless a ulp package is installed.
func installULP(t *testing.T) {
	t.Helper()
	if dpkgInstalled("ulp") {
		t.Logf("package ulp is installed already: the livepatch packages use it")
		return
	}
	dir := t.TempDir()
	deb := filepath.Join(dir, "ulp.deb")
	b := testenv.BuildDir()
	args := []string{"--no-print-directory", "-C", testenv.ModuleRoot(), "BUILD=" + b,
		"DEB_ROOT=" + filepath.Join(dir, "root"), "DEB_OUT=" + deb, "VERSION=0.0.0~test"}
	for _, f := range []string{"ulp", "ulpfleet", "libpulp.so.0"} {
		args = append(args, "-o", filepath.Join(b, f))
	}
	run(t, nil, "make", append(args, "deb")...)
	install(t, nil, deb, "ulp")
}

// libPackage builds and installs (with env) version of a package
// ulp-test-libcalc that holds a copy of lib in /usr/lib/ulp-test-libcalc,
// and returns that folder.
func libPackage(t *testing.T, env []string, lib, version string) string {
	t.Helper()
	const name, dir = "ulp-test-libcalc", "/usr/lib/ulp-test-libcalc"
	b, err := os.ReadFile(lib)
	if err != nil {
		t.Fatal(err)
	}
	c := debpkg.Control{
		Fields:      [][2]string{{"Package", name}, {"Version", version}, {"Architecture", debpkg.Arch}, {"Maintainer", "ulp tests <root@localhost>"}},
		Description: "libcalc of the ulp tests",
	}
	deb := filepath.Join(t.TempDir(), name+".deb")
	f, err := os.Create(deb)
	if err != nil {
		t.Fatal(err)
	}
	if err := debpkg.WriteDeb(f, c, nil, []debpkg.File{{Name: dir + "/" + filepath.Base(lib), Mode: 0o644, Data: b}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("dpkg -i %s %s:\n%s", name, version, install(t, env, deb, name))
	return dir
}

// activeFiles lists the patch-on-start folder.
func activeFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// TestInstall installs livepatch packages with dpkg on this machine while
// processes run with the runtime preloaded: the project's own ulp package
// first (the livepatch package depends on it), then a package holding the
// target library, so that ulp deb finds it by build-id. Version 1 patches
// a running process and one started afterwards (patch-on-start); version 2
// replaces it in both; dpkg -r reverts it. The patch-on-start folder is a
// private one, named in LIBPULP_ACTIVE_DIR for dpkg (its maintainer
// scripts run ulp with dpkg's environment) and for the processes.
func TestInstall(t *testing.T) {
	testenv.Require(t, testenv.Root, testenv.Build, testenv.CC, testenv.Ptrace)
	fx := triggertest.Build(t)
	lockDpkg(t)
	installULP(t)
	active := filepath.Join(t.TempDir(), "active")
	env := []string{"LIBPULP_ACTIVE_DIR=" + active}
	libDir := libPackage(t, env, fx.Calc, "1.0-1")
	start := func() *triggertest.Proc {
		p := triggertest.Start(t, append([]string{"LD_LIBRARY_PATH=" + libDir}, env...), fx.App)
		if !triggertest.Mapped(t, p.PID, libDir+"/libcalc.so.1") {
			t.Fatalf("pid %d does not map the packaged libcalc.so.1", p.PID)
		}
		return p
	}
	old := start()
	old.Expect(t, map[string]string{"value": "100"})

	const name = "ulp-livepatch-ulp-test-libcalc-1.0-1"
	dir := t.TempDir()
	v1, v2 := filepath.Join(dir, "v1.deb"), filepath.Join(dir, "v2.deb")
	ulpDeb(t, "-o", v1, fx.LP["lp200"])
	ulpDeb(t, "-o", v2, "--version", "2", fx.LP["lp300"])
	if got, want := field(t, v1, "Depends"), "ulp, ulp-test-libcalc (>= 1.0-1)"; got != want {
		t.Errorf("Depends: %q, want %q", got, want)
	}
	if got := field(t, v1, "Package"); got != name {
		t.Errorf("Package: %q, want %q", got, name)
	}

	// A package built for another version of the library applies nothing.
	stale := filepath.Join(dir, "stale.deb")
	ulpDeb(t, "-o", stale, "--name", "ulp-livepatch-stale", "--depends-on", "ulp-test-libcalc=0.9-1", fx.LP["lp400"])
	out := install(t, env, stale, "ulp-livepatch-stale")
	if !strings.Contains(out, "ulp-test-libcalc 0.9-1 is not installed: its livepatches are not applied") {
		t.Errorf("dpkg -i of a package for another library version printed:\n%s", out)
	}
	old.Expect(t, map[string]string{"value": "100"})
	if got := activeFiles(t, active); len(got) != 0 {
		t.Errorf("patch-on-start folder after the stale package: %q", got)
	}
	run(t, env, "dpkg", "-r", "ulp-livepatch-stale")

	out = install(t, env, v1, name)
	t.Logf("dpkg -i v1:\n%s", out)
	// The line has no "PID N (app): " prefix when the process is the only
	// one with the runtime on the machine.
	if !regexp.MustCompile(fmt.Sprintf(`(?m)^(PID %d \(app\): )?SUCCESS$`, old.PID)).MatchString(out) {
		t.Errorf("dpkg -i printed no SUCCESS for pid %d:\n%s", old.PID, out)
	}
	old.Expect(t, map[string]string{"value": "200"})
	if got, want := activeFiles(t, active), []string{name + "_lp200.so"}; !slices.Equal(got, want) {
		t.Errorf("patch-on-start folder after install: %q, want %q", got, want)
	}
	later := start()
	later.Expect(t, map[string]string{"value": "200"})

	out = run(t, env, "dpkg", "-i", v2)
	t.Logf("dpkg -i v2:\n%s", out)
	for _, p := range []*triggertest.Proc{old, later} {
		p.Expect(t, map[string]string{"value": "300"})
	}
	if got, want := activeFiles(t, active), []string{name + "_lp300.so"}; !slices.Equal(got, want) {
		t.Errorf("patch-on-start folder after upgrade: %q, want %q", got, want)
	}

	// The library is upgraded (here to the same bytes): dpkg triggers the
	// livepatch package, which leaves the patch-on-start folder; the
	// running processes keep the patch, and one started afterwards runs the
	// library as it is.
	libPackage(t, env, fx.Calc, "1.0-2")
	if got := activeFiles(t, active); len(got) != 0 {
		t.Errorf("patch-on-start folder after the library's upgrade: %q", got)
	}
	for _, p := range []*triggertest.Proc{old, later} {
		p.Expect(t, map[string]string{"value": "300"})
	}
	start().Expect(t, map[string]string{"value": "100"})

	out = run(t, env, "dpkg", "-r", name)
	t.Logf("dpkg -r:\n%s", out)
	for _, p := range []*triggertest.Proc{old, later} {
		p.Expect(t, map[string]string{"value": "100"})
		p.Untraced(t)
	}
	if got := activeFiles(t, active); len(got) != 0 {
		t.Errorf("patch-on-start folder after removal: %q", got)
	}
	if _, err := os.Stat(debpkg.Root + "/" + name); !os.IsNotExist(err) {
		t.Errorf("%s/%s after removal: %v", debpkg.Root, name, err)
	}
}
