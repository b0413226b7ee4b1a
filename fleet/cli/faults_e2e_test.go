package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"ulp/internal/testenv"
	"ulp/livepatch/trigger/triggertest"
	"ulp/remote/remotetest/sshfleet"
)

// agentOn returns the PID (in this machine's PID namespace) of an agent
// running `trigger` inside host h's namespaces, or 0.
func agentOn(t *testing.T, h *sshfleet.Host) int {
	t.Helper()
	init, err := h.SSHDPID()
	if err != nil {
		t.Fatal(err)
	}
	ns, err := os.Readlink("/proc/" + strconv.Itoa(init) + "/ns/mnt")
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		argv := strings.Split(string(b), "\x00")
		if len(argv) < 2 || !strings.HasPrefix(argv[0], sshfleet.StateDir+"/bin/ulp-") || argv[1] != "trigger" {
			continue
		}
		if n, _ := os.Readlink("/proc/" + e.Name() + "/ns/mnt"); n == ns {
			return pid
		}
	}
	return 0
}

// waitAgent waits up to 60 s for an agent triggering on h.
func waitAgent(t *testing.T, h *sshfleet.Host) int {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if pid := agentOn(t, h); pid != 0 {
			return pid
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s: no agent ever triggered", h.Name)
	return 0
}

// checkStaged fails t when a host holds, under a final name in its staging
// folder, a file that is not complete: every bin/ulp-* must be the agent,
// every patches/*/NAME the container NAME of srcs.
func checkStaged(t *testing.T, f *sshfleet.Fleet, agent string, srcs ...string) {
	t.Helper()
	want := map[string][]byte{}
	for _, s := range srcs {
		b, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		want[filepath.Base(s)] = b
	}
	ab, err := os.ReadFile(agent)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range f.Hosts {
		agents, _ := filepath.Glob(filepath.Join(h.Root, "bin", "ulp-*"))
		for _, a := range agents {
			if b, _ := os.ReadFile(a); !bytes.Equal(b, ab) {
				t.Errorf("%s: %s is not the whole agent (%d of %d bytes)", h.Name, a, len(b), len(ab))
			}
		}
		cs, _ := filepath.Glob(filepath.Join(h.Root, "patches", "*", "*"))
		for _, c := range cs {
			if b, _ := os.ReadFile(c); !bytes.Equal(b, want[filepath.Base(c)]) {
				t.Errorf("%s: %s is not a whole container of the rollout", h.Name, c)
			}
		}
	}
}

// TestE2E_OpenSSH_AgentKilledMidTrigger: the agent on host02 is SIGKILLed
// while the process loads the container (its constructor takes 3 s).
// host02's result says the agent was killed; its process keeps running,
// answering, on the old code; the other hosts are patched. Retry finishes
// the job on host02 only, and no host holds a partial file.
func TestE2E_OpenSSH_AgentKilledMidTrigger(t *testing.T) {
	testenv.Require(t, testenv.Root, testenv.Ptrace, testenv.CC, testenv.SSHD, testenv.Build)
	fx := triggertest.Build(t)
	slow := fx.Pack(t, "slow", "lp_slow.c", nil, fx.Calc, "calc_value:calc_value_lp")
	rt := testenv.Artifact(t, "libpulp.so.0")
	agent := testenv.Artifact(t, "ulp")
	f, args := realFleet(t, 3, agent)
	var procs []*sshfleet.Proc
	for _, h := range f.Hosts {
		procs = append(procs, h.Start(t, []string{"LD_PRELOAD=" + rt}, fx.App))
	}
	values := func(want ...string) {
		t.Helper()
		for i, p := range procs {
			if got := p.Ask(t, "value"); got != want[i] {
				t.Errorf("host%02d: value %s, want %s", i+1, got, want[i])
			}
		}
	}
	results := filepath.Join(t.TempDir(), "run.ndjson")
	args = append(args, "--results", results, "--canary", "0", "--max-failures", "10", "--parallel", "3")
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	killed := make(chan int, 1)
	go func() {
		pid := waitAgent(t, f.Hosts[1])
		time.Sleep(500 * time.Millisecond) // inside the constructor
		syscall.Kill(pid, syscall.SIGKILL)
		killed <- pid
	}()
	code, out, _, _ := cliRun(ctx, t, append(append([]string{"apply"}, args...), "--json", slow)...)
	<-killed
	hosts, _ := decodeRecords(t, out)
	if code != ExitFailure || classes(hosts) != "host01=success host02=agent_error host03=success" {
		t.Fatalf("apply: exit %d, %s", code, classes(hosts))
	}
	if e := hosts[1].Error; hosts[1].Phase != "trigger" || !strings.Contains(e, "the agent was killed by signal 9 (killed)") {
		t.Errorf("host02: phase %q, error %q: want the trigger, killed by SIGKILL", hosts[1].Phase, e)
	}
	values("900", "100", "900")
	checkStaged(t, f, agent, slow)

	code, out, _, _ = cliRun(ctx, t, append(append([]string{"retry"}, args...), "--json")...)
	if hosts, _ := decodeRecords(t, out); code != 0 || classes(hosts) != "host02=success" {
		t.Errorf("retry: exit %d, %s", code, classes(hosts))
	}
	values("900", "900", "900")
	checkStaged(t, f, agent, slow)
}

// TestE2E_OpenSSH_ControllerInterrupted: the ulpfleet binary gets SIGINT
// (Ctrl-C) while every host's agent is loading the container. It exits 130
// with every host accounted for as interrupted, having stopped the remote
// agents; every process keeps running on the old code (or, had its write
// been done, the new); no host holds a partial file; retry finishes the
// job on every host.
func TestE2E_OpenSSH_ControllerInterrupted(t *testing.T) {
	testenv.Require(t, testenv.Root, testenv.Ptrace, testenv.CC, testenv.SSHD, testenv.Build)
	bin := buildFleet(t)
	fx := triggertest.Build(t)
	slow := fx.Pack(t, "slow", "lp_slow.c", nil, fx.Calc, "calc_value:calc_value_lp")
	rt := testenv.Artifact(t, "libpulp.so.0")
	agent := testenv.Artifact(t, "ulp")
	f, args := realFleet(t, 3, agent)
	var procs []*sshfleet.Proc
	for _, h := range f.Hosts {
		procs = append(procs, h.Start(t, []string{"LD_PRELOAD=" + rt}, fx.App))
	}
	results := filepath.Join(t.TempDir(), "run.ndjson")
	args = append(args, "--results", results, "--canary", "0", "--parallel", "3")

	var agents []int
	out := interrupt(t, bin, append(append([]string{"apply"}, args...), "--json", slow), func() {
		for _, h := range f.Hosts {
			agents = append(agents, waitAgent(t, h))
		}
		time.Sleep(300 * time.Millisecond) // inside the constructors
	})
	hosts, sum := decodeRecords(t, out)
	if classes(hosts) != "host01=interrupted host02=interrupted host03=interrupted" || !sum.Cancelled {
		t.Errorf("%s, %+v", classes(hosts), sum)
	}
	// The remote agents were stopped with the rollout.
	for i, pid := range agents {
		deadline := time.Now().Add(10 * time.Second)
		for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("host%02d: agent %d still running after the controller exited", i+1, pid)
		}
	}
	for i, p := range procs {
		if got := p.Ask(t, "value"); got != "100" && got != "900" {
			t.Errorf("host%02d: value %s", i+1, got)
		}
	}
	checkStaged(t, f, agent, slow)

	code, out, _, _ := cliRun(t.Context(), t, append(append([]string{"retry"}, args...), "--json")...)
	if hosts, _ := decodeRecords(t, out); code != 0 || classes(hosts) != "host01=success host02=success host03=success" {
		t.Errorf("retry: exit %d, %s", code, classes(hosts))
	}
	for i, p := range procs {
		if got := p.Ask(t, "value"); got != "900" {
			t.Errorf("host%02d after retry: value %s, want 900", i+1, got)
		}
	}
	checkStaged(t, f, agent, slow)
}

// buildFleet builds the ulpfleet binary.
func buildFleet(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ulpfleet")
	if out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "ulp/cmd/ulpfleet").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// interrupt runs bin with args, sends it SIGINT once ready returns, checks
// that it exits 130 within 20 s, and returns its standard output.
func interrupt(t *testing.T, bin string, args []string, ready func()) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(t.Context(), bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ready()
	start := time.Now()
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	t.Logf("ulpfleet %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != ExitCancelled {
		t.Fatalf("exit: %v, want status %d", err, ExitCancelled)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("exiting took %v", d)
	}
	return stdout.String()
}

// TestE2E_OpenSSH_ControllerInterruptedMidUpload: the ulpfleet binary gets
// SIGINT while it uploads a large agent (the real one with 128 MiB
// appended) to every host. Every host is interrupted, none holds a partial
// agent or container under its final name nor a temporary file, no process
// was touched, and retry finishes the job.
func TestE2E_OpenSSH_ControllerInterruptedMidUpload(t *testing.T) {
	testenv.Require(t, testenv.Root, testenv.Ptrace, testenv.CC, testenv.SSHD, testenv.Build)
	bin := buildFleet(t)
	fx := triggertest.Build(t)
	rt := testenv.Artifact(t, "libpulp.so.0")
	real, err := os.ReadFile(testenv.Artifact(t, "ulp"))
	if err != nil {
		t.Fatal(err)
	}
	pad := make([]byte, 128<<20)
	rand.Read(pad)
	agent := filepath.Join(t.TempDir(), "ulp")
	if err := os.WriteFile(agent, append(real, pad...), 0o755); err != nil {
		t.Fatal(err)
	}
	f, args := realFleet(t, 3, agent)
	var procs []*sshfleet.Proc
	for _, h := range f.Hosts {
		procs = append(procs, h.Start(t, []string{"LD_PRELOAD=" + rt}, fx.App))
	}
	results := filepath.Join(t.TempDir(), "run.ndjson")
	args = append(args, "--results", results, "--canary", "0", "--parallel", "3", "--upload-parallel", "3")
	out := interrupt(t, bin, append(append([]string{"apply"}, args...), "--json", fx.LP["lp200"]), func() {
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			tmps, _ := filepath.Glob(filepath.Join(f.Hosts[1].Root, "bin", ".ulp-*.tmp-*"))
			for _, p := range tmps {
				if fi, err := os.Stat(p); err == nil && fi.Size() > 1<<20 {
					return
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatal("host02's upload never started")
	})
	hosts, sum := decodeRecords(t, out)
	if !sum.Cancelled || hosts[1].Class != "interrupted" {
		t.Errorf("%s, %+v", classes(hosts), sum)
	}
	checkStaged(t, f, agent, fx.LP["lp200"])
	for _, h := range f.Hosts {
		if tmps, _ := filepath.Glob(filepath.Join(h.Root, "*", ".*.tmp-*")); len(tmps) > 0 {
			t.Errorf("%s: temporary files left by the interrupted upload: %v", h.Name, tmps)
		}
	}
	for i, p := range procs {
		if got := p.Ask(t, "value"); got != "100" && (got != "200" || hosts[i].Class != "success") {
			t.Errorf("host%02d (%s): value %s", i+1, hosts[i].Class, got)
		}
	}
	code, out, _, _ := cliRun(t.Context(), t, append(append([]string{"retry"}, args...), "--json")...)
	if hosts, _ := decodeRecords(t, out); code != 0 || len(hosts) == 0 || strings.Count(classes(hosts), "=success") != len(hosts) {
		t.Errorf("retry: exit %d, %s", code, classes(hosts))
	}
	checkStaged(t, f, agent, fx.LP["lp200"])
	for i, p := range procs {
		if got := p.Ask(t, "value"); got != "200" {
			t.Errorf("host%02d after retry: value %s, want 200", i+1, got)
		}
	}
}
