//go:build glibc

package debiantest_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ulp/builder/debiantest"
	"ulp/internal/testenv"
)

// TestGlibc_RealFixLive (make test-glibc: configuring glibc the way Debian
// does takes minutes) builds a livepatch from a fix of Debian's glibc
// 2.36-9+deb12u14 (CVE-2025-15281, wordexp) against the stock libc.so.6 of
// 2.36-9+deb12u7 extracted from its .deb, applies it to a probe that runs on
// that libc through the version's own ld.so, sees wordexp fixed through the
// API, reverts it and sees the old behaviour again.
func TestGlibc_RealFixLive(t *testing.T) {
	testenv.Require(t, testenv.DebSrc, testenv.CC, testenv.Ptrace)
	src := debiantest.Source(t, "glibc", debiantest.GlibcOld)
	libDir := filepath.Join(debiantest.Extract(t, "libc6", debiantest.GlibcOld), "lib", "x86_64-linux-gnu") // libc6 ships /lib/...
	dir := t.TempDir()
	out := filepath.Join(dir, "wordexp.so")
	start := time.Now()
	msg := ulp(t, 30*time.Minute, "build", "--target", filepath.Join(libDir, "libc.so.6"), "--source", src,
		"--patch", filepath.Join("testdata", "glibc", "CVE-2025-15281-wordexp.patch"), "-o", out)
	t.Logf("ulp build (glibc): %v\n%s", time.Since(start).Round(time.Millisecond), msg)
	if dump := ulp(t, time.Minute, "dump", out); !strings.Contains(dump, "labels:             CVE-2025-15281") || !strings.Contains(dump, "  wordexp -> ") {
		t.Fatalf("ulp dump:\n%s", dump)
	}

	exe := filepath.Join(dir, "probe")
	testenv.CompileC(t, exe, []string{"-O1", "-Wall", "-Werror"}, filepath.Join("testdata", "glibc", "probe.c"))
	cmd := exec.Command(filepath.Join(libDir, "ld-linux-x86-64.so.2"), "--library-path", libDir, exe)
	cmd.Env = append(os.Environ(), "LD_PRELOAD="+testenv.Artifact(t, "libpulp.so.0"))
	stdin, stdout := testenv.StartPiped(t, cmd)
	in, sc := bufio.NewWriter(stdin), bufio.NewScanner(stdout)
	line := func() string {
		t.Helper()
		got := make(chan string, 1)
		go func() {
			if sc.Scan() {
				got <- sc.Text()
			}
			close(got)
		}()
		select {
		case l, ok := <-got:
			if !ok {
				t.Fatal("probe ended")
			}
			return l
		case <-time.After(30 * time.Second):
			t.Fatal("probe did not answer within 30s")
			return ""
		}
	}
	if l := line(); l != "ready 2.36" {
		t.Fatalf("probe started with %q", l)
	}
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", cmd.Process.Pid))
	if err != nil || !strings.Contains(string(maps), filepath.Join(libDir, "libc.so.6")) {
		t.Fatalf("the probe does not run the extracted libc.so.6: %v", err)
	}
	expect := func(want string) {
		t.Helper()
		fmt.Fprintln(in, "wordexp")
		in.Flush()
		if got := line(); got != "wordexp "+want {
			t.Errorf("probe: %q, want %q", got, "wordexp "+want)
		}
	}
	pid := fmt.Sprint(cmd.Process.Pid)
	expect("vulnerable")
	if o := ulp(t, time.Minute, "trigger", "-p", pid, out); !strings.Contains(o, "SUCCESS") {
		t.Fatalf("apply: %s", o)
	}
	expect("fixed")
	if o := ulp(t, time.Minute, "trigger", "--revert", "-p", pid, out); !strings.Contains(o, "SUCCESS") {
		t.Fatalf("revert: %s", o)
	}
	expect("vulnerable")
}
