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
func (u *testUser) run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), testenv.Artifact(t, "ulp"), args...)
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
		if code != ExitOK || out != "SUCCESS\n" {
			t.Fatalf("trigger own process: exit %d, %q %q", code, out, errOut)
		}
		own.Expect(t, map[string]string{"value": "200"})
	} else {
		// Yama 1 lets a user trace only its descendants: root applies.
		if out, errOut, code := (*testUser)(nil).run(t, "trigger", "-p", ownPID, lp); code != ExitOK {
			t.Fatalf("trigger as root: exit %d, %q %q", code, out, errOut)
		}
	}
	if out, errOut, code := u.run(t, "check", "-p", ownPID, lp); code != ExitOK || out != fmt.Sprintf("PID %d (app): %s applied\n", own.PID, lp) {
		t.Errorf("check own process: exit %d, %q %q", code, out, errOut)
	}
	if out, errOut, code := u.run(t, "patches", "-p", ownPID); code != ExitOK || !strings.Contains(out, "      livepatch: lp200.so loaded on ") {
		t.Errorf("patches own process: exit %d, %q %q", code, out, errOut)
	}
	if out, errOut, code := u.run(t, "messages", "-p", ownPID); code != ExitOK || !strings.Contains(out, "libpulp loaded") {
		t.Errorf("messages own process: exit %d, %q %q", code, out, errOut)
	}

	// Root's process: refused, saying why, never a crash or a silent skip.
	denied := fmt.Sprintf("cannot read process: pid %d: ", other.PID)
	tests := []struct {
		args           []string
		code           int
		stdout, stderr string // prefixes
	}{
		{[]string{"trigger", "-p", otherPID, lp}, ExitFailure, fmt.Sprintf("ERROR no permission to inspect process %d: %s", other.PID, denied[len("cannot read process: "):]), ""},
		{[]string{"patches", "-p", otherPID}, ExitFailure, fmt.Sprintf("PID: %d, name: app\n  error: %s", other.PID, denied), ""},
		{[]string{"messages", "-p", otherPID}, ExitFailure, "", "ulp: " + denied},
		{[]string{"check", "-p", otherPID, lp}, ExitUsage, "", "ulp: " + denied},
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
	// A glob reaches both: one line each, the summary, exit status 1.
	out, _, code := u.run(t, "patches", "-p", "app")
	if code != ExitFailure || !strings.Contains(out, fmt.Sprintf("PID: %d, name: app\n  error: %s", other.PID, denied)) ||
		!strings.Contains(out, fmt.Sprintf("PID: %d, name: app\n  Livepatchable libraries:\n", own.PID)) {
		t.Errorf("patches -p app as %s: exit %d\n%s", u.name, code, out)
	}
	out, _, code = u.run(t, "trigger", "-p", "app", "--revert", lp)
	refused := fmt.Sprintf("PID %d (app): ERROR no permission to inspect process %d: pid %d: ", other.PID, other.PID, other.PID)
	if code != ExitFailure || !strings.Contains(out, refused) || yama == "0" && !strings.Contains(out, fmt.Sprintf("PID %d (app): SUCCESS\n", own.PID)) {
		t.Errorf("trigger -p app --revert as %s: exit %d\n%s\nwant a line %q", u.name, code, out, refused)
	}
	t.Logf("trigger -p app --revert as %s:\n%s", u.name, out)
	other.Expect(t, map[string]string{"value": "100"})

	// Root reaches the user's process.
	if out, errOut, code := (*testUser)(nil).run(t, "patches", "-p", ownPID); code != ExitOK || !strings.HasPrefix(out, fmt.Sprintf("PID: %d, name: app\n", own.PID)) {
		t.Errorf("patches as root: exit %d, %q %q", code, out, errOut)
	}
	if out, errOut, code := (*testUser)(nil).run(t, "trigger", "-p", ownPID, fx.LP["lp300"]); code != ExitOK || out != "SUCCESS\n" {
		t.Errorf("trigger as root on the user's process: exit %d, %q %q", code, out, errOut)
	}
	own.Expect(t, map[string]string{"value": "300"})
}
