package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ulp/internal/testenv"
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
		{[]string{"status"}, ExitFailure, "disabled: " + file + " has no libpulp.so.0 entry\nother entries: /opt/libother.so\n", "", "/opt/libother.so\n"},
		{[]string{"enable", "/bad/libpulp.so.0"}, ExitUsage, "", "runtime does not load", "/opt/libother.so\n"},
		{[]string{"enable", lib}, ExitOK, "enabled: " + file + " preloads " + lib + "\nonly processes started from now on are covered: restart running services to make them patchable\n", "", "/opt/libother.so\n" + lib + "\n"},
		{[]string{"status"}, ExitOK, "enabled: " + file + " preloads " + lib + "\nother entries: /opt/libother.so\n", "", "/opt/libother.so\n" + lib + "\n"},
		{[]string{"disable"}, ExitOK, "disabled: removed libpulp.so.0 from " + file + "\nprocesses already running keep the runtime until they restart; programs started from now on do not get it\n", "", "/opt/libother.so\n"},
		{[]string{"disable"}, ExitOK, "already disabled: " + file + " has no libpulp.so.0 entry\n", "", "/opt/libother.so\n"},
		{[]string{"frobnicate"}, ExitUsage, "", "", "/opt/libother.so\n"},
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
