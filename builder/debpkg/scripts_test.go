package debpkg

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestShellQuote has sh print each quoted word back.
func TestShellQuote(t *testing.T) {
	for _, s := range []string{"plain", "", "it's", "'", "''", "$(id) `id` $HOME \\n", "a b\tc\nd", "*.so", "-n"} {
		out, err := exec.Command("sh", "-c", "printf '%s' "+shellQuote(s)).Output()
		if err != nil || string(out) != s {
			t.Errorf("sh printed %q, %v; want %q", out, err, s)
		}
	}
}

// fakeULP puts on PATH an ulp that appends its arguments, one a line, to
// a log and exits with status rc; it returns the log's path and the
// environment.
func fakeULP(t *testing.T, rc int) (string, []string) {
	t.Helper()
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	script := "#!/bin/sh\nfor a; do printf '%s\\n' \"$a\"; done >> " + shellQuote(log) + "\necho -- >> " + shellQuote(log) +
		"\nexit " + string(rune('0'+rc)) + "\n"
	if err := os.WriteFile(filepath.Join(dir, "ulp"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return log, append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
}

// TestScripts runs the maintainer scripts with a fake ulp: the arguments
// they pass, one call a library on configure and one on remove, nothing on
// upgrade or for another version of the library, what a trigger (the
// library upgraded) removes from the patch-on-start folder, and exit
// status 0 (with a warning) when ulp fails.
func TestScripts(t *testing.T) {
	name := "ulp-livepatch-test-1"
	libs := []string{"libcrypto.so.3", "libssl.so.3"}
	files := []string{name + "_a.so", name + "_b.so"}
	v, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", "libc6").Output()
	if err != nil {
		t.Fatal(err)
	}
	libc := &Library{Package: "libc6", Version: string(v)}
	old := &Library{Package: "libc6", Version: "0.1-1"}
	applied := []string{
		"trigger\n--activate\n--revert-all=libcrypto.so.3\n/usr/lib/ulp/livepatches/ulp-livepatch-test-1/libcrypto.so.3/*.so\n--\n",
		"trigger\n--activate\n--revert-all=libssl.so.3\n/usr/lib/ulp/livepatches/ulp-livepatch-test-1/libssl.so.3/*.so\n--\n",
	}
	const (
		notApplied  = "libc6 0.1-1 is not installed: its livepatches are not applied"
		deactivated = "libc6 0.1-1 is no longer installed: processes started from now on do not get its livepatches"
	)
	for _, tc := range []struct {
		script, arg string
		calls       []string
		says        string
		left        []string // of files and other.so in the patch-on-start folder
	}{
		{postinst(name, libs, nil, files), "configure", applied, "", nil},
		{postinst(name, libs, []*Library{libc}, files), "configure", applied, "", nil},
		// Built for another version of libc6: nothing is applied.
		{postinst(name, libs, []*Library{libc, old}, files), "configure", nil, notApplied, nil},
		{postinst(name, libs, []*Library{{Package: "ulp-not-a-package", Version: "1"}}, files), "configure", nil, "ulp-not-a-package 1 is not installed", nil},
		// The library changed: out of the patch-on-start folder, unless
		// it is (back) at the version built for.
		{postinst(name, libs, []*Library{old}, files), "triggered", nil, deactivated, []string{"other.so"}},
		{postinst(name, libs, []*Library{libc}, files), "triggered", applied, "", nil},
		{postinst(name, libs, nil, files), "abort-upgrade", nil, "", nil},
		{prerm(name), "remove", []string{
			"trigger\n--activate\n--revert\n--recursive\n/usr/lib/ulp/livepatches/ulp-livepatch-test-1/*.so\n--\n",
		}, "", nil},
		{prerm(name), "upgrade", nil, "", nil},
	} {
		for _, rc := range []int{0, 1, 3} {
			if out, err := exec.Command("sh", "-n", "-c", tc.script).CombinedOutput(); err != nil {
				t.Fatalf("sh -n: %v\n%s\n%s", err, out, tc.script)
			}
			log, env := fakeULP(t, rc)
			active := t.TempDir()
			for _, f := range append([]string{"other.so"}, files...) {
				if err := os.WriteFile(filepath.Join(active, f), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.Command("sh", "-c", tc.script, "script", tc.arg)
			cmd.Env = append(env, "LIBPULP_ACTIVE_DIR="+active)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Errorf("%s with ulp exiting %d: %v\n%s", tc.arg, rc, err, out)
			}
			b, _ := os.ReadFile(log)
			if got := string(b); got != strings.Join(tc.calls, "") {
				t.Errorf("%s: ulp called with\n%s\nwant\n%s", tc.arg, got, strings.Join(tc.calls, ""))
			}
			warned := strings.Contains(string(out), name+": ulp trigger exited with status")
			if want := rc != 0 && len(tc.calls) > 0; warned != want {
				t.Errorf("%s with ulp exiting %d: warning %v, want %v; output:\n%s", tc.arg, rc, warned, want, out)
			}
			if tc.says != "" && !strings.Contains(string(out), tc.says) {
				t.Errorf("%s: output lacks %q:\n%s", tc.arg, tc.says, out)
			}
			left := tc.left
			if left == nil {
				left = append([]string{"other.so"}, files...)
			}
			ents, _ := os.ReadDir(active)
			var got []string
			for _, e := range ents {
				got = append(got, e.Name())
			}
			if !slices.Equal(got, left) {
				t.Errorf("%s: patch-on-start folder holds %q, want %q", tc.arg, got, left)
			}
		}
	}
}
