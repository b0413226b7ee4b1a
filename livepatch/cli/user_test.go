package cli

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"ulp/internal/testenv"
	"ulp/livepatch/report"
	"ulp/livepatch/trigger/triggertest"
)

// testUser is a system user created for one test.
type testUser struct {
	name     string
	uid, gid uint32
}

// addUser creates a system user without a home or a login shell, deleted
// when t ends.
func addUser(t *testing.T) testUser {
	t.Helper()
	var b [4]byte
	rand.Read(b[:])
	name := "ulpt" + hex.EncodeToString(b[:])
	if out, err := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v\n%s", name, err, out)
		}
	})
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return testUser{name: name, uid: uint32(uid), gid: uint32(gid)}
}

// run runs the real ulp binary as u (as root when u is nil) and returns
// its stdout, stderr and exit status.
// With "sudo" as the first argument it runs `sudo -n ulp ARGS` as u.
func (u *testUser) run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), testenv.Artifact(t, "ulp"), args...)
	if len(args) > 0 && args[0] == "sudo" {
		cmd = exec.CommandContext(t.Context(), "sudo", append([]string{"-n", testenv.Artifact(t, "ulp")}, args[1:]...)...)
	}
	if u != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: u.uid, Gid: u.gid}}
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("ulp %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// TestRegularUser runs the real ulp as a regular user created for the
// test: it patches, lists, checks and reads the messages of its own
// process, and is refused root's process, per process, with a clear
// message and the documented exit status. Root (as through sudo) reaches
// the user's process too.
func TestRegularUser(t *testing.T) {
	testenv.Require(t, testenv.Root, testenv.Ptrace, testenv.CC, testenv.Build)
	u := addUser(t)
	fx := triggertest.Build(t)
	for _, d := range []string{filepath.Dir(fx.Dir), fx.Dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	rt := testenv.Artifact(t, "libpulp.so.0")
	own := triggertest.StartPlain(t, []string{"LD_PRELOAD=" + rt}, "setpriv",
		"--reuid", fmt.Sprint(u.uid), "--regid", fmt.Sprint(u.gid), "--clear-groups", fx.App)
	other := triggertest.Start(t, nil, fx.App) // root's
	ownPID, otherPID := strconv.Itoa(own.PID), strconv.Itoa(other.PID)
	lp := fx.LP["lp200"]
	yama := ""
	if b, err := os.ReadFile("/proc/sys/kernel/yama/ptrace_scope"); err == nil {
		yama = strings.TrimSpace(string(b))
	}

	// Its own process.
	if yama == "" || yama == "0" {
		out, errOut, code := u.run(t, "trigger", "-p", ownPID, lp)
		if code != report.ExitOK || out != "SUCCESS\n" {
			t.Fatalf("trigger own process: exit %d, %q %q", code, out, errOut)
		}
		own.Expect(t, map[string]string{"value": "200"})
	} else {
		// Yama 1 lets a user trace only its descendants: root applies.
		if out, errOut, code := (*testUser)(nil).run(t, "trigger", "-p", ownPID, lp); code != report.ExitOK {
			t.Fatalf("trigger as root: exit %d, %q %q", code, out, errOut)
		}
	}
	if out, errOut, code := u.run(t, "check", "-p", ownPID, lp); code != report.ExitOK || out != fmt.Sprintf("PID %d (app): %s applied\n", own.PID, lp) {
		t.Errorf("check own process: exit %d, %q %q", code, out, errOut)
	}
	if out, errOut, code := u.run(t, "patches", "-p", ownPID); code != report.ExitOK || !strings.Contains(out, "      livepatch: lp200.so loaded on ") {
		t.Errorf("patches own process: exit %d, %q %q", code, out, errOut)
	}
	if out, errOut, code := u.run(t, "messages", "-p", ownPID); code != report.ExitOK || !strings.Contains(out, "libpulp loaded") {
		t.Errorf("messages own process: exit %d, %q %q", code, out, errOut)
	}

	// Root's process: refused, saying why, never a crash or a silent skip.
	denied := fmt.Sprintf("cannot read process: pid %d: ", other.PID)
	tests := []struct {
		args           []string
		code           int
		stdout, stderr string // prefixes
	}{
		{[]string{"trigger", "-p", otherPID, lp}, report.ExitFailure, fmt.Sprintf("ERROR no permission to inspect process %d: %s", other.PID, denied[len("cannot read process: "):]), ""},
		{[]string{"patches", "-p", otherPID}, report.ExitFailure, fmt.Sprintf("PID: %d, name: app\n  error: %s", other.PID, denied), ""},
		{[]string{"messages", "-p", otherPID}, report.ExitFailure, "", "ulp: " + denied},
		{[]string{"check", "-p", otherPID, lp}, report.ExitUsage, "", "ulp: " + denied},
	}
	for _, tt := range tests {
		out, errOut, code := u.run(t, tt.args...)
		if code != tt.code || !strings.HasPrefix(out, tt.stdout) || !strings.HasPrefix(errOut, tt.stderr) ||
			(tt.stdout == "" && out != "") {
			t.Errorf("%v as %s: exit %d (want %d)\nstdout %q (want prefix %q)\nstderr %q (want prefix %q)",
				tt.args, u.name, code, tt.code, out, tt.stdout, errOut, tt.stderr)
		}
		t.Logf("%v as %s: exit %d\n%s%s", tt.args, u.name, code, out, errOut)
		if msg := out + errOut; !strings.Contains(msg, "permission denied (run ulp as the process's owner or as root)") {
			t.Errorf("%v as %s: %q lacks the permission hint", tt.args, u.name, msg)
		}
	}
	// A glob, or every process, is a whole-host selection: root's process
	// is left out, not an error, and only counted apart in --json.
	out, errOut, code := u.run(t, "patches", "-p", "app")
	if code != report.ExitOK || strings.Contains(out, "PID: "+otherPID+",") || errOut != "" ||
		!strings.HasPrefix(out, fmt.Sprintf("PID: %d, name: app\n  Livepatchable libraries:\n", own.PID)) {
		t.Errorf("patches -p app as %s: exit %d\n%s%s", u.name, code, out, errOut)
	}
	if out, errOut, code := u.run(t, "patches"); code != report.ExitOK || strings.Contains(out, "error:") || !strings.Contains(out, fmt.Sprintf("PID: %d, name: app\n", own.PID)) {
		t.Errorf("patches as %s: exit %d\n%s%s", u.name, code, out, errOut)
	}
	if out, errOut, code := u.run(t, "messages", "-p", "app"); code != report.ExitOK || strings.Contains(out, otherPID+" (app):") || !strings.Contains(out, "libpulp loaded") {
		t.Errorf("messages -p app as %s: exit %d\n%s%s", u.name, code, out, errOut)
	}
	if yama == "" || yama == "0" {
		out, errOut, code = u.run(t, "trigger", "--json", "-p", "app", "--revert", lp)
		recs, sum := decodeTrigger(t, out)
		if code != report.ExitOK || len(recs) != 1 || recs[0].PID != own.PID || recs[0].Result != report.Success ||
			sum.Candidates != 1 || sum.Inaccessible < 1 || sum.Failed != 0 {
			t.Errorf("trigger --json -p app --revert as %s: exit %d\n%s%s", u.name, code, out, errOut)
		}
		own.Expect(t, map[string]string{"value": "100"})
		if out, errOut, code := u.run(t, "set_patchable", "-p", "app", "disable"); code != report.ExitOK || out != fmt.Sprintf("PID %d (app): patching disabled\n", own.PID) {
			t.Errorf("set_patchable -p app disable as %s: exit %d\n%s%s", u.name, code, out, errOut)
		}
		if out, errOut, code := u.run(t, "set_patchable", "-p", "app", "enable"); code != report.ExitOK || out != fmt.Sprintf("PID %d (app): patching enabled\n", own.PID) {
			t.Errorf("set_patchable -p app enable as %s: exit %d\n%s%s", u.name, code, out, errOut)
		}
	}
	// -u narrows to one user: root's processes are all out of reach.
	if out, errOut, code := u.run(t, "patches", "-u", "root", "-p", "app"); code != report.ExitFailure || out != "" ||
		errOut != "ulp: no process with libpulp.so.0 matches -p \"app\"\n" {
		t.Errorf("patches -u root -p app as %s: exit %d\n%s%s", u.name, code, out, errOut)
	}
	other.Expect(t, map[string]string{"value": "100"})

	// Through sudo, root's processes appear too; -u picks one user's.
	sudoers := filepath.Join("/etc/sudoers.d", u.name)
	if err := os.WriteFile(sudoers, []byte(u.name+" ALL=(root) NOPASSWD: "+testenv.Artifact(t, "ulp")+"\n"), 0o440); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(sudoers) })
	sudo := func(args ...string) (string, string, int) {
		return u.run(t, append([]string{"sudo"}, args...)...)
	}
	out, errOut, code = sudo("patches", "-p", "app")
	if code != report.ExitOK || !strings.Contains(out, fmt.Sprintf("PID: %d, name: app\n", other.PID)) || !strings.Contains(out, fmt.Sprintf("PID: %d, name: app\n", own.PID)) {
		t.Errorf("sudo ulp patches -p app as %s: exit %d\n%s%s", u.name, code, out, errOut)
	}
	out, errOut, code = sudo("patches", "-u", u.name, "-p", "app")
	if code != report.ExitOK || strings.Contains(out, "PID: "+otherPID+",") || !strings.Contains(out, fmt.Sprintf("PID: %d, name: app\n", own.PID)) {
		t.Errorf("sudo ulp patches -u %s -p app: exit %d\n%s%s", u.name, code, out, errOut)
	}
	out, errOut, code = sudo("trigger", "-u", "root", "-p", "app", lp)
	if code != report.ExitOK || out != "SUCCESS\n" && !strings.Contains(out, fmt.Sprintf("PID %d (app): SUCCESS\n", other.PID)) || strings.Contains(out, "PID "+ownPID+" (") {
		t.Errorf("sudo ulp trigger -u root -p app as %s: exit %d\n%s%s", u.name, code, out, errOut)
	}
	other.Expect(t, map[string]string{"value": "200"})
	own.Expect(t, map[string]string{"value": "100"})
	// set_patchable -u: only that user's processes change.
	out, errOut, code = sudo("set_patchable", "-u", u.name, "-p", "app", "disable")
	if code != report.ExitOK || out != fmt.Sprintf("PID %d (app): patching disabled\n", own.PID) {
		t.Errorf("sudo ulp set_patchable -u %s -p app disable: exit %d\n%s%s", u.name, code, out, errOut)
	}
	if out, _, _ := sudo("trigger", "-p", ownPID, lp); !strings.HasPrefix(out, "SKIPPED blocked by user") {
		t.Errorf("trigger after set_patchable -u disable: %q", out)
	}
	if out, _, _ := sudo("patches", "-p", otherPID); strings.Contains(out, "Livepatching status:") {
		t.Errorf("set_patchable -u %s changed root's process:\n%s", u.name, out)
	}
	if _, errOut, code := sudo("set_patchable", "-u", u.name, "-p", "app", "enable"); code != report.ExitOK {
		t.Errorf("set_patchable -u enable: exit %d %s", code, errOut)
	}
	if _, errOut, code := sudo("trigger", "-u", "root", "-p", "app", "--revert", lp); code != report.ExitOK {
		t.Errorf("sudo ulp trigger --revert: exit %d %s", code, errOut)
	}
	other.Expect(t, map[string]string{"value": "100"})

	// Root reaches the user's process.
	if out, errOut, code := (*testUser)(nil).run(t, "patches", "-p", ownPID); code != report.ExitOK || !strings.HasPrefix(out, fmt.Sprintf("PID: %d, name: app\n", own.PID)) {
		t.Errorf("patches as root: exit %d, %q %q", code, out, errOut)
	}
	if out, errOut, code := (*testUser)(nil).run(t, "trigger", "-p", ownPID, fx.LP["lp300"]); code != report.ExitOK || out != "SUCCESS\n" {
		t.Errorf("trigger as root on the user's process: exit %d, %q %q", code, out, errOut)
	}
	own.Expect(t, map[string]string{"value": "300"})
}
