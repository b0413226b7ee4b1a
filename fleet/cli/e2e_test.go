package cli

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	osuser "os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"ulp/fleet"
	"ulp/internal/testenv"
	"ulp/livepatch/trigger/triggertest"
	"ulp/remote/remotetest/sshfleet"
)

// realFleet starts n real OpenSSH hosts (sshfleet) and returns them with
// the ulpfleet arguments that reach them. host01 is in group canary, the
// others in group rest.
func realFleet(t *testing.T, n int, agent string) (*sshfleet.Fleet, []string) {
	f := sshfleet.Start(t, n)
	var b strings.Builder
	b.WriteString("all:\n  vars: {ansible_user: root}\n  children:\n    canary:\n      hosts:\n")
	for i, h := range f.Hosts {
		if i == 1 {
			b.WriteString("    rest:\n      hosts:\n")
		}
		fmt.Fprintf(&b, "        %s: {ansible_host: %s}\n", h.Name, h.Addr)
	}
	inv := writeInventory(t, b.String())
	return f, []string{"-i", inv, "--known-hosts", f.KnownHosts, "--identity", f.Identity,
		"--agent", agent, "--timeout", "120s", "--connect-timeout", "5s"}
}

func setHostMode(t *testing.T, h *sshfleet.Host, mode string) {
	if err := os.WriteFile(filepath.Join(h.Root, "mode"), []byte(mode), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestE2E_OpenSSH_Rollout: canary-then-all over real sshd hosts, status
// counts, revert, and the canary gate.
func TestE2E_OpenSSH_Rollout(t *testing.T) {
	f, args := realFleet(t, 4, fakeAgent(t))
	args = append(args, "--canary", "group:canary")
	ctx := t.Context()

	code, out, _, _ := cliRun(ctx, t, append([]string{"apply", "--json", "--parallel", "2", sampleContainer}, args...)...)
	hosts, sum := decodeRecords(t, out)
	if code != 0 || sum.OK != 4 || sum.Patched != 4 {
		t.Fatalf("apply: exit %d, %s, %+v", code, classes(hosts), sum)
	}
	if hosts[0].Wave != 1 || hosts[1].Wave != 2 {
		t.Errorf("waves: host01 in %d, host02 in %d; want the canary first", hosts[0].Wave, hosts[1].Wave)
	}

	code, out, _, _ = cliRun(ctx, t, append([]string{"status", "--json"}, args...)...)
	var rep fleet.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 {
		t.Fatalf("status: exit %d, %v", code, err)
	}
	if len(rep.Patches) != 1 || rep.Patches[0].Hosts != 4 || rep.Patches[0].Processes != 4 || len(rep.Hosts) != 4 || rep.Hosts[3].Processes != 2 {
		t.Errorf("report %+v", rep)
	}

	// The same report through host01 as the jump host (OpenSSH's own
	// direct-tcpip forwarding).
	code, out, _, _ = cliRun(ctx, t, append([]string{"status", "--json", "--jump", "root@" + f.Hosts[0].Addr}, args...)...)
	var viaJump fleet.Report
	if err := json.Unmarshal([]byte(out), &viaJump); err != nil || code != 0 || len(viaJump.Patches) != 1 || viaJump.Patches[0].Hosts != 4 {
		t.Errorf("status via jump host: exit %d, %v, %+v", code, err, viaJump)
	}

	code, _, _, _ = cliRun(ctx, t, append([]string{"revert", sampleContainer}, args...)...)
	if code != 0 {
		t.Errorf("revert: exit %d", code)
	}
	code, out, _, _ = cliRun(ctx, t, append([]string{"status"}, args...)...)
	if code != 0 || !strings.Contains(out, "(no patches applied on any host)") {
		t.Errorf("status after revert: exit %d\n%s", code, out)
	}

	// Canary failure: the rest is not attempted.
	setHostMode(t, f.Hosts[0], "error")
	code, out, _, _ = cliRun(ctx, t, append([]string{"apply", "--json", sampleContainer}, args...)...)
	hosts, sum = decodeRecords(t, out)
	want := "host01=patch_failed host02=not_attempted host03=not_attempted host04=not_attempted"
	if code != ExitStopped || classes(hosts) != want || !strings.HasPrefix(sum.Stopped, "canary gate") {
		t.Errorf("canary failure: exit %d, %s, %q", code, classes(hosts), sum.Stopped)
	}
}

// TestE2E_OpenSSH_Faults: one host down, one whose host key changed, one
// whose sshd is killed mid-upload; each is reported as what it is, the
// others are unaffected, and no partial file is left at a final path.
func TestE2E_OpenSSH_Faults(t *testing.T) {
	// A large agent (the fake agent script plus 128 MiB of padding after
	// its exit) makes the upload slow enough to kill sshd during it.
	script, err := os.ReadFile(fakeAgent(t))
	if err != nil {
		t.Fatal(err)
	}
	pad := make([]byte, 128<<20)
	rand.Read(pad)
	big := filepath.Join(t.TempDir(), "agent")
	if err := os.WriteFile(big, append(append(script, "\nexit 0\n"...), pad...), 0o755); err != nil {
		t.Fatal(err)
	}
	f, args := realFleet(t, 5, big)
	down, rekeyed, cut := f.Hosts[1], f.Hosts[2], f.Hosts[3]
	down.Kill()
	rekeyed.RegenerateHostKey(t)

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	go func() {
		// Kill cut's sshd once its upload is under way.
		for ctx.Err() == nil {
			tmps, _ := filepath.Glob(filepath.Join(cut.Root, "bin", ".ulp-*.tmp-*"))
			for _, p := range tmps {
				if fi, err := os.Stat(p); err == nil && fi.Size() > 1<<20 {
					cut.Kill()
					return
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	results := filepath.Join(t.TempDir(), "run.ndjson")
	args = append(args, "--results", results, "--max-failures", "10", "--canary", "0")
	code, out, _, _ := cliRun(ctx, t, append(append([]string{"apply"}, args...), "--json",
		"--parallel", "5", "--upload-parallel", "5", sampleContainer)...)
	hosts, _ := decodeRecords(t, out)
	got := map[string]string{}
	for _, h := range hosts {
		got[h.Host] = h.Class
	}
	if code != ExitFailure || got["host01"] != "success" || got["host05"] != "success" ||
		got["host02"] != "unreachable" || got["host03"] != "host_key_changed" ||
		(got["host04"] != "upload_failed" && got["host04"] != "connection_lost") {
		t.Errorf("exit %d, classes %v", code, got)
	}
	// No partial agent at a final path on the cut host.
	agents, _ := filepath.Glob(filepath.Join(cut.Root, "bin", "ulp-*"))
	want, _ := os.ReadFile(big)
	for _, a := range agents {
		if data, _ := os.ReadFile(a); len(data) != len(want) {
			t.Errorf("%s: partial file (%d of %d bytes) at the final path", a, len(data), len(want))
		}
	}
	// After a restart, a retry succeeds on the cut host; the others are
	// still what they were, and the two hosts that succeeded are left alone.
	cut.Restart(t)
	code, out, _, _ = cliRun(ctx, t, append(append([]string{"retry"}, args...), "--json")...)
	wantRetry := "host02=unreachable host03=host_key_changed host04=success"
	if hosts, _ := decodeRecords(t, out); code != ExitFailure || classes(hosts) != wantRetry {
		t.Errorf("retry: exit %d, %s, want %s", code, classes(hosts), wantRetry)
	}
	// The retry saved its results: the next retry is down to two hosts.
	code, out, _, _ = cliRun(ctx, t, append(append([]string{"retry"}, args...), "--dry-run")...)
	if code != 0 || !strings.Contains(out, "on 2 hosts") || strings.Contains(out, "host04") {
		t.Errorf("second retry --dry-run: exit %d\n%s", code, out)
	}
}

// TestE2E_OpenSSH_RealAgent rolls real livepatch containers out with the
// real agent to preloaded processes on real sshd hosts.
func TestE2E_OpenSSH_RealAgent(t *testing.T) {
	testenv.Require(t, testenv.Root, testenv.Ptrace, testenv.CC, testenv.SSHD, testenv.Build)
	fx := triggertest.Build(t)
	runtime := testenv.Artifact(t, "libpulp.so.0")
	f, args := realFleet(t, 3, testenv.Artifact(t, "ulp"))
	args = append(args, "--canary", "group:canary")
	var procs []*sshfleet.Proc
	for _, h := range f.Hosts {
		for range 2 {
			procs = append(procs, h.Start(t, []string{"LD_PRELOAD=" + runtime}, fx.App))
		}
	}
	values := func(want string) {
		t.Helper()
		for i, p := range procs {
			if got := p.Ask(t, "value"); got != want {
				t.Errorf("process %d: value %s, want %s", i, got, want)
			}
		}
	}
	values("100")
	ctx := t.Context()
	code, out, _, _ := cliRun(ctx, t, append(append([]string{"ping"}, args...), "--json")...)
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r pingRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil || r.Class != "success" || r.Preflight["runtime_processes"] != "2" {
			t.Errorf("ping: exit %d, %s (%v)", code, line, err)
		}
	}

	code, out, _, _ = cliRun(ctx, t, append(append([]string{"apply"}, args...), "--json", fx.LP["lp200"])...)
	hosts, sum := decodeRecords(t, out)
	if code != 0 || sum.OK != 3 || sum.Patched != 6 || classes(hosts) != "host01=success host02=success host03=success" {
		t.Fatalf("apply: exit %d, %s, %+v", code, classes(hosts), sum)
	}
	values("200")

	// Every process's ring has the runtime's start and the agent's apply.
	code, out, _, _ = cliRun(ctx, t, append(append([]string{"messages"}, args...), "--json")...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 {
		t.Errorf("messages: exit %d\n%s", code, out)
	}
	for _, line := range lines {
		var r messagesRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil || r.Class != "success" || len(r.Processes) != 2 {
			t.Errorf("messages: %v: %s", err, line)
			continue
		}
		for _, pm := range r.Processes {
			all := strings.Join(pm.Messages, "\n")
			if pm.Error != "" || !strings.Contains(all, "libpulp loaded") || !strings.Contains(all, "ulp: applied ") {
				t.Errorf("messages of %s pid %d: %q %s", r.Host, pm.PID, pm.Error, all)
			}
		}
	}

	code, out, _, _ = cliRun(ctx, t, append(append([]string{"status"}, args...), "--json")...)
	var rep fleet.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 {
		t.Fatalf("status: exit %d, %v", code, err)
	}
	if len(rep.Patches) != 1 || rep.Patches[0].Hosts != 3 || rep.Patches[0].Processes != 6 || rep.Patches[0].Target != "libcalc.so.1" {
		t.Errorf("report %+v", rep)
	}

	// Atomic replace: revert everything on libcalc and apply lp300.
	code, _, _, _ = cliRun(ctx, t, append(append([]string{"apply"}, args...), "--revert-all=libcalc.so.1", fx.LP["lp300"])...)
	if code != 0 {
		t.Fatalf("replace: exit %d", code)
	}
	values("300")

	code, _, _, _ = cliRun(ctx, t, append(append([]string{"revert"}, args...), "--revert-all=libcalc.so.1")...)
	if code != 0 {
		t.Fatalf("revert-all: exit %d", code)
	}
	values("100")
	code, out, _, _ = cliRun(ctx, t, append([]string{"status"}, args...)...)
	if code != 0 || !strings.Contains(out, "(no patches applied on any host)") {
		t.Errorf("status after revert: exit %d\n%s", code, out)
	}
}

// TestE2E_OpenSSH_Sudo logs in as a user created for the test, who owns
// the staging folder and may run only the agent as root without a password
// (a sudoers drop-in): without --sudo the agent cannot patch root's
// processes; with --sudo the rollout, status and revert work.
func TestE2E_OpenSSH_Sudo(t *testing.T) {
	testenv.Require(t, testenv.Root, testenv.Ptrace, testenv.CC, testenv.SSHD, testenv.Build, testenv.Sudo)
	fx := triggertest.Build(t)
	runtime := testenv.Artifact(t, "libpulp.so.0")
	user := newSudoUser(t)
	f := sshfleet.Start(t, 2)
	var b strings.Builder
	b.WriteString("all:\n  vars: {ansible_user: " + user + "}\n  hosts:\n")
	var procs []*sshfleet.Proc
	for _, h := range f.Hosts {
		fmt.Fprintf(&b, "    %s: {ansible_host: %s}\n", h.Name, h.Addr)
		// The login user owns the staging folder (the host's StateDir).
		if out, err := exec.Command("chown", user+":", h.Root).CombinedOutput(); err != nil {
			t.Fatalf("chown: %v: %s", err, out)
		}
		procs = append(procs, h.Start(t, []string{"LD_PRELOAD=" + runtime}, fx.App))
	}
	args := []string{"-i", writeInventory(t, b.String()), "--known-hosts", f.KnownHosts, "--identity", f.Identity,
		"--agent", testenv.Artifact(t, "ulp"), "--timeout", "120s", "--connect-timeout", "5s", "--canary", "1"}
	values := func(want string) {
		t.Helper()
		for i, p := range procs {
			if got := p.Ask(t, "value"); got != want {
				t.Errorf("process %d: value %s, want %s", i, got, want)
			}
		}
	}
	ctx := t.Context()

	// Without sudo the agent runs as the user: root's processes are out of
	// its reach, left out by the agent and counted as not inspected.
	code, out, _, _ := cliRun(ctx, t, append(append([]string{"apply"}, args...), "--json", fx.LP["lp200"])...)
	if hosts, _ := decodeRecords(t, out); code != ExitStopped || len(hosts) == 0 || hosts[0].Class != "patch_failed" ||
		hosts[0].Inaccessible == 0 || !strings.Contains(hosts[0].Error, "not inspected") {
		t.Errorf("apply without --sudo: exit %d, %s", code, classes(hosts))
	}
	values("100")
	// The uploads belong to the login user.
	agents, _ := filepath.Glob(filepath.Join(f.Hosts[0].Root, "bin", "ulp-*"))
	if len(agents) != 1 || owner(t, agents[0]) != user {
		t.Errorf("agent on host01: %v, owner %s", agents, owner(t, agents[0]))
	}

	args = append(args, "--sudo")
	code, out, _, _ = cliRun(ctx, t, append(append([]string{"apply"}, args...), "--json", fx.LP["lp200"])...)
	if hosts, sum := decodeRecords(t, out); code != 0 || sum.OK != 2 || sum.Patched != 2 {
		t.Fatalf("apply --sudo: exit %d, %s, %+v", code, classes(hosts), sum)
	}
	values("200")
	code, out, _, _ = cliRun(ctx, t, append(append([]string{"status"}, args...), "--json")...)
	var rep fleet.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 || len(rep.Patches) != 1 || rep.Patches[0].Processes != 2 {
		t.Errorf("status --sudo: exit %d, %v, %+v", code, err, rep)
	}
	if code, _, _, _ = cliRun(ctx, t, append(append([]string{"revert"}, args...), fx.LP["lp200"])...); code != 0 {
		t.Errorf("revert --sudo: exit %d", code)
	}
	values("100")
}

// newSudoUser creates a user with a shell and no password who may run
// /var/lib/ulp/bin/ulp-* as root without a password, and removes both
// when t ends.
func newSudoUser(t *testing.T) string {
	var rnd [4]byte
	rand.Read(rnd[:])
	user := fmt.Sprintf("ulpt%x", rnd)
	// '*': no password, but not a locked account (sshd refuses those).
	if out, err := exec.Command("useradd", "-M", "-d", "/nonexistent", "-s", "/bin/sh", "-p", "*", user).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("userdel", user).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v: %s", user, err, out)
		}
	})
	drop := filepath.Join("/etc/sudoers.d", user)
	rule := user + " ALL=(root) NOPASSWD: " + fleet.DefaultStagingDir + "/bin/ulp-*\n"
	if err := os.WriteFile(drop, []byte(rule), 0o440); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(drop) })
	if out, err := exec.Command("visudo", "-c", "-f", drop).CombinedOutput(); err != nil {
		t.Fatalf("visudo: %v: %s", err, out)
	}
	return user
}

// owner returns the user name owning path.
func owner(t *testing.T, path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return err.Error()
	}
	u, err := osuser.LookupId(strconv.Itoa(int(fi.Sys().(*syscall.Stat_t).Uid)))
	if err != nil {
		return err.Error()
	}
	return u.Username
}

// TestE2E_OpenSSH_AutoRevert: three canaries ran the agent and then failed
// three ways (the health check, a process ERROR, the host's timeout while
// the trigger ran); --auto-revert reverts all three, and the host after the
// gate is never touched.
func TestE2E_OpenSSH_AutoRevert(t *testing.T) {
	f, args := realFleet(t, 4, fakeAgent(t))
	if err := os.WriteFile(filepath.Join(f.Hosts[0].Root, "unhealthy"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	setHostMode(t, f.Hosts[1], "error")
	setHostMode(t, f.Hosts[2], "slow-apply")
	args = append(args, "--canary", "3", "--parallel", "3", "--timeout", "10s", "--auto-revert",
		"--health-check", "test ! -e "+sshfleet.StateDir+"/unhealthy")
	code, out, _, _ := cliRun(t.Context(), t, append([]string{"apply", sampleContainer}, args...)...)
	if code != ExitStopped {
		t.Errorf("exit %d, want %d", code, ExitStopped)
	}
	apply, revert, ok := strings.Cut(out, "auto-revert of the canary hosts:\n")
	if !ok {
		t.Fatalf("no auto-revert table:\n%s", out)
	}
	for _, want := range []string{"host01  canary 1  health_failed  1", "host02  canary 1  patch_failed   0",
		"host03  canary 1  timeout", "host04  rest      not_attempted", "stopped: canary gate"} {
		if !strings.Contains(apply, want) {
			t.Errorf("apply table lacks %q", want)
		}
	}
	if !strings.Contains(revert, "revert: 3 hosts:") {
		t.Errorf("auto-revert did not cover the 3 canaries:\n%s", revert)
	}
	for _, h := range f.Hosts[:3] {
		calls, _ := os.ReadFile(filepath.Join(h.Root, "calls"))
		if !regexp.MustCompile(`(?m)^apply [0-9a-f]{16}\nrevert [0-9a-f]{16}$`).Match(calls) {
			t.Errorf("%s: triggers %q, want an apply then a revert", h.Name, calls)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(f.Hosts[0].Root, "ledger")); strings.TrimSpace(string(b)) != "" {
		t.Errorf("host01 still patched after the auto-revert: %q", b)
	}
	if ents, _ := os.ReadDir(f.Hosts[3].Root); len(ents) != 0 {
		t.Errorf("host04 was touched: %v", ents)
	}
}

// TestE2E_OpenSSH_ControllerKilled: the controller dies mid-rollout (the
// terminal closed: SIGHUP; or SIGKILL, the OOM killer's) while host02's
// trigger runs. The results file still holds the run and host01's record,
// and retry finishes exactly the rest: host02 to host04, never host01.
func TestE2E_OpenSSH_ControllerKilled(t *testing.T) {
	bin := buildUlpfleet(t)
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			f, args := realFleet(t, 4, fakeAgent(t))
			results := filepath.Join(t.TempDir(), "run.ndjson")
			args = append(args, "--canary", "0", "--parallel", "1", "--results", results)
			setHostMode(t, f.Hosts[1], "slow")
			var stdout, stderr strings.Builder
			cmd := exec.CommandContext(t.Context(), bin, append([]string{"apply", "--json", sampleContainer}, args...)...)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				if _, err := os.Stat(filepath.Join(f.Hosts[1].Root, "calls")); err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("host02's trigger never started\n%s", stderr.String())
				}
			}
			cmd.Process.Signal(sig)
			err := cmd.Wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("ulpfleet: %v", err)
			}
			if sig == syscall.SIGHUP && ee.ExitCode() != ExitCancelled {
				t.Errorf("SIGHUP: exit %d, want %d\n%s", ee.ExitCode(), ExitCancelled, stderr.String())
			}
			lr, err := readResults(results)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(lr.Run.Hosts, " ") != "host01 host02 host03 host04" || strings.Join(lr.Retry, " ") != "host02 host03 host04" ||
				lr.Finished != (sig == syscall.SIGHUP) {
				t.Errorf("results after %v: %+v", sig, lr)
			}
			// The run's own agent on host02 (still running after SIGKILL)
			// ends once its mode changes, and frees the host's lock.
			setHostMode(t, f.Hosts[1], "ok")
			code, out, _, _ := cliRun(t.Context(), t, append([]string{"retry", "--json"}, args...)...)
			hosts, sum := decodeRecords(t, out)
			if want := "host02=success host03=success host04=success"; code != 0 || classes(hosts) != want || sum.OK != 3 {
				t.Errorf("retry: exit %d, %s, want %s", code, classes(hosts), want)
			}
			calls, _ := os.ReadFile(filepath.Join(f.Hosts[0].Root, "calls"))
			if strings.Count(string(calls), "apply ") != 1 {
				t.Errorf("host01 triggered %q, want one apply", calls)
			}
			code, out, _, _ = cliRun(t.Context(), t, append([]string{"retry"}, args...)...)
			if code != 0 || !strings.Contains(out, "all 3 hosts of the last apply succeeded") {
				t.Errorf("second retry: exit %d\n%s", code, out)
			}
		})
	}
}

// TestE2E_OpenSSH_Clean: clean removes, under each host's lock, the
// temporary files of dead uploads and the agents of other versions that
// are older than 10 minutes, and nothing else.
func TestE2E_OpenSSH_Clean(t *testing.T) {
	agent := fakeAgent(t)
	data, err := os.ReadFile(agent)
	if err != nil {
		t.Fatal(err)
	}
	current := "ulp-" + fleet.NewArtifact("ulp", data).SHA256[:16]
	f, args := realFleet(t, 2, agent)
	root := f.Hosts[0].Root
	old := time.Now().Add(-time.Hour)
	files := map[string]bool{ // path in the staging folder: removed
		"bin/ulp-0123456789abcdef":                true,
		"bin/.ulp-0123456789abcdef.tmp-0a1b2c3d":  true,
		"bin/.ulp-0123456789abcdef.tmp-4e5f.gz":   true,
		"patches/aa/.fix.so.tmp-0a1b2c3d":         true,
		"bin/" + current:                          false,
		"bin/ulp-fedcba9876543210":                false, // too recent
		"bin/.ulp-fedcba9876543210.tmp-0a1b2c3d":  false, // an upload in progress
		"patches/aa/fix.so":                       false,
		"patches/0123456789abcdef/ulp-0123456789": false,
	}
	for p, gone := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
		if gone || p == "bin/"+current || strings.HasPrefix(p, "patches/") {
			os.Chtimes(full, old, old)
		}
	}
	// host02's lock is held for a second: clean waits for it.
	hold := exec.CommandContext(t.Context(), "flock", filepath.Join(f.Hosts[1].Root, "lock"), "sleep", "1")
	if err := hold.Start(); err != nil {
		t.Fatal(err)
	}
	defer hold.Wait()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	code, out, _, _ := cliRun(t.Context(), t, append([]string{"clean", "--json", "--canary", "0"}, args...)...)
	if d := time.Since(start); d < 800*time.Millisecond {
		t.Errorf("clean took %v: it did not wait for host02's lock", d)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 2 {
		t.Fatalf("clean: exit %d\n%s", code, out)
	}
	var rec cleanRecord
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil || rec.Class != "success" {
		t.Fatalf("host01: %v, %s", err, lines[0])
	}
	var want, got []string
	for p, gone := range files {
		if gone {
			want = append(want, sshfleet.StateDir+"/"+p)
		}
		if _, err := os.Stat(filepath.Join(root, p)); (err == nil) == gone {
			t.Errorf("%s: exists %v after clean, want %v", p, err == nil, !gone)
		}
	}
	got = append(got, rec.Removed...)
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("removed %q\nwant %q", got, want)
	}
	if !strings.Contains(lines[1], `"removed":[]`) {
		t.Errorf("host02: %s", lines[1])
	}
}
