package cli

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"ulp/internal/testenv"
	"ulp/livepatch/report"
)

// TestPreloadCommand runs enable, status and disable on a scratch root and
// checks the exact lines, the exit statuses and the file.
func TestPreloadCommand(t *testing.T) {
	root := t.TempDir()
	rt, err := os.ReadFile(testenv.Artifact(t, "libpulp.so.0"))
	if err != nil {
		t.Fatal(err)
	}
	for dir, data := range map[string][]byte{"usr/lib/x86_64-linux-gnu": rt, "bad": []byte("junk")} {
		if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, dir, "libpulp.so.0"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(root, "etc/ld.so.preload")
	if err := os.WriteFile(file, []byte("/opt/libother.so\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const lib = "/usr/lib/x86_64-linux-gnu/libpulp.so.0"
	steps := []struct {
		args     []string
		code     int
		stdout   string
		inStderr string
		file     string
	}{
		{[]string{"status"}, report.ExitFailure, "disabled: " + file + " has no libpulp.so.0 entry\nother entries: /opt/libother.so\n", "", "/opt/libother.so\n"},
		{[]string{"enable", "/bad/libpulp.so.0"}, report.ExitUsage, "", "runtime does not load", "/opt/libother.so\n"},
		{[]string{"enable", lib}, report.ExitOK, "enabled: " + file + " preloads " + lib + "\nonly processes started from now on are covered: restart running services to make them patchable\n", "", "/opt/libother.so\n" + lib + "\n"},
		{[]string{"status"}, report.ExitOK, "enabled: " + file + " preloads " + lib + "\nother entries: /opt/libother.so\n", "", "/opt/libother.so\n" + lib + "\n"},
		{[]string{"disable"}, report.ExitOK, "disabled: removed libpulp.so.0 from " + file + "\nprocesses already running keep the runtime until they restart; programs started from now on do not get it\n", "", "/opt/libother.so\n"},
		{[]string{"disable"}, report.ExitOK, "already disabled: " + file + " has no libpulp.so.0 entry\n", "", "/opt/libother.so\n"},
		{[]string{"frobnicate"}, report.ExitUsage, "", "", "/opt/libother.so\n"},
	}
	for _, s := range steps {
		args := append([]string{"preload", "--root", root}, s.args...)
		out, errOut, code := inspectRun(t, args...)
		if code != s.code || (s.stdout != "" && !strings.HasPrefix(out, s.stdout)) || !strings.Contains(errOut, s.inStderr) {
			t.Errorf("%v: exit %d (want %d)\nstdout %q\n  want %q\nstderr %q (want %q)", s.args, code, s.code, out, s.stdout, errOut, s.inStderr)
		}
		if b, _ := os.ReadFile(file); string(b) != s.file {
			t.Errorf("%v: file %q, want %q", s.args, b, s.file)
		}
	}
}

// TestSystemWidePreload enables the runtime in the /etc/ld.so.preload of a
// minimal root and runs programs chrooted into it: a dynamic program gets
// the runtime, so does the program it execs, and so does a setuid-root
// program run by nobody (ld.so.preload, unlike LD_PRELOAD, applies to
// them); a static program runs without it. After disable, none gets it.
func TestSystemWidePreload(t *testing.T) {
	testenv.Require(t, testenv.Root, testenv.CC)
	rt := testenv.Artifact(t, "libpulp.so.0")
	build := t.TempDir()
	probe, static := filepath.Join(build, "probe"), filepath.Join(build, "probe-static")
	testenv.CompileC(t, probe, []string{"-O2"}, "testdata/preloadprobe.c")
	testenv.CompileC(t, static, []string{"-O2", "-static"}, "testdata/preloadprobe.c")
	root := t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	const lib = "/usr/lib/x86_64-linux-gnu/libpulp.so.0"
	install := func(from, to string, mode os.FileMode) {
		t.Helper()
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(root, to)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dst, mode); err != nil {
			t.Fatal(err)
		}
	}
	install(probe, "/probe", 0o755)
	install(probe, "/probe-setuid", 0o755|os.ModeSetuid)
	install(static, "/probe-static", 0o755)
	install(rt, lib, 0o644)
	out, err := exec.Command("ldd", probe, rt).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Fields(string(out)) {
		if strings.HasPrefix(f, "/") && !strings.HasSuffix(f, ":") {
			install(f, f, 0o755)
		}
	}
	if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(uid uint32, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), args[0], args[1:]...)
		cmd.Env = []string{"PATH=/"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root, Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v in the chroot as uid %d: %v\n%s", args, uid, err, b)
		}
		return string(b)
	}
	checks := func(rtState string) {
		t.Helper()
		tests := []struct {
			uid  uint32
			args []string
			want string
		}{
			{0, []string{"/probe"}, "/probe: uid 0 euid 0 runtime " + rtState + "\n"},
			{0, []string{"/probe", "/probe", "/probe-static"}, "/probe: uid 0 euid 0 runtime " + rtState + "\n/probe: uid 0 euid 0 runtime " + rtState + "\n/probe-static: uid 0 euid 0 runtime absent\n"},
			{65534, []string{"/probe-setuid"}, "/probe-setuid: uid 65534 euid 0 runtime " + rtState + "\n"},
			{65534, []string{"/probe-static"}, "/probe-static: uid 65534 euid 65534 runtime absent\n"},
		}
		for _, tt := range tests {
			if got := run(tt.uid, tt.args...); got != tt.want {
				t.Errorf("%v as uid %d:\n got %q\nwant %q", tt.args, tt.uid, got, tt.want)
			}
		}
	}
	checks("absent")
	if out, errOut, code := inspectRun(t, "preload", "--root", root, "enable", lib); code != report.ExitOK {
		t.Fatalf("preload enable: exit %d, %q %q", code, out, errOut)
	}
	checks("present")

	// A setuid-root program started by nobody runs with the runtime: root
	// lists it, nobody is refused it with the reason.
	cmd := exec.Command("/probe-setuid", "-wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root, Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	pid := strconv.Itoa(cmd.Process.Pid)
	// Its line says main runs: the runtime's constructor and libc are
	// there (the runtime merely mapped is not enough on a busy machine).
	lines := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- l
	}()
	var line string
	select {
	case line = <-lines:
	case <-time.After(60 * time.Second):
		t.Fatal("the setuid probe printed nothing in 60 s")
	}
	listing, errOut, code := inspectRun(t, "patches", "-p", pid)
	if code != report.ExitOK {
		t.Errorf("patches -p %s (setuid) as root: exit %d\n%s%s", pid, code, listing, errOut)
	}
	checkLibs(t, listedLibsOf(t, listing, cmd.Process.Pid, "probe-setuid"), []string{libcPath(t, cmd.Process.Pid)}, filepath.Join(root, lib))
	out, err = runAsNobody(t, nobodyTestBinary(t), "patches", "-p", pid)
	if !strings.HasPrefix(string(out), fmt.Sprintf("PID: %s, name: probe-setuid\n  error: cannot read process: ", pid)) || err == nil {
		t.Errorf("patches -p %s (setuid) as nobody: %v, %q", pid, err, out)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil || line != "/probe-setuid: uid 65534 euid 0 runtime present\n" {
		t.Errorf("setuid probe: %v, %q", err, line)
	}

	if out, errOut, code := inspectRun(t, "preload", "--root", root, "disable"); code != report.ExitOK {
		t.Fatalf("preload disable: exit %d, %q %q", code, out, errOut)
	}
	checks("absent")
}

// TestPreloadAsUser: a regular user may read the status but not change the
// list; the file is left as it was and the exit status is 1.
func TestPreloadAsUser(t *testing.T) {
	testenv.Require(t, testenv.Root)
	root := worldDir(t)
	if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(root, "etc/ld.so.preload")
	const list = "/usr/lib/x86_64-linux-gnu/libpulp.so.0\n"
	if err := os.WriteFile(file, []byte(list), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := nobodyTestBinary(t)
	out, err := runAsNobody(t, bin, "preload", "--root", root, "status")
	if err != nil || !strings.HasPrefix(string(out), "enabled, but the runtime is missing: "+file) {
		t.Errorf("status as nobody: %v, %q", err, out)
	}
	out, err = runAsNobody(t, bin, "preload", "--root", root, "disable")
	var ee *exec.ExitError
	if !errorsAs(err, &ee) || ee.ExitCode() != report.ExitFailure || len(out) != 0 {
		t.Errorf("disable as nobody: %v, %q; want exit status 1 and no output", err, out)
	}
	if b, _ := os.ReadFile(file); string(b) != list {
		t.Errorf("disable as nobody changed the file: %q", b)
	}
}
