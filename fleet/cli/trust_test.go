package cli

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"ulp/internal/testenv"
	"ulp/livepatch/sign"
	"ulp/livepatch/trigger/triggertest"
	"ulp/remote/remotetest/sshfleet"
)

// trustDir writes a policy folder trusting the public keys and returns it.
func trustDir(t *testing.T, keys ...ed25519.PublicKey) string {
	t.Helper()
	dir := t.TempDir()
	for i, k := range keys {
		b, err := sign.MarshalPublicKey(k)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "k"+string(rune('0'+i))+".pub"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// signedContainer writes the sample container signed with key (unsigned
// when nil, one byte flipped after signing when tamper) and returns it.
func signedContainer(t *testing.T, key ed25519.PrivateKey, name string, tamper bool) string {
	t.Helper()
	b, err := os.ReadFile(sampleContainer)
	if err != nil {
		t.Fatal(err)
	}
	if key != nil {
		if b, err = sign.Sign(b, key); err != nil {
			t.Fatal(err)
		}
	}
	if tamper {
		b[len(b)/3] ^= 1
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func newSignKey(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := sign.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

// TestTrusted_InProcessSSH: with --trusted DIR, apply and push check every
// container on the controller against DIR's keys before any host is
// touched (an unsigned, tampered or otherwise signed container is exit
// status 2 saying why, and no host gets anything), and every host's agent
// is run with --trusted=DIR to check again, also by a retry of the run
// without --trusted. Revert needs no signature.
func TestTrusted_InProcessSSH(t *testing.T) {
	f := startInProcessFleet(t, 3, "")
	pub, key := newSignKey(t)
	_, other := newSignKey(t)
	dir := trustDir(t, pub)
	ctx := t.Context()
	args := append(append([]string{}, f.args...), "--trusted", dir)

	for _, tt := range []struct {
		name, file, why string
	}{
		{"unsigned", signedContainer(t, nil, "fix.so", false), "container is not signed"},
		{"tampered", signedContainer(t, key, "fix.so", true), "signature does not match"},
		{"other key", signedContainer(t, other, "fix.so", false), "untrusted key"},
	} {
		for _, action := range []string{"apply", "push"} {
			code, _, stderr, _ := cliRun(ctx, t, append([]string{action, "--json", tt.file}, args...)...)
			if code != ExitUsage || !strings.Contains(stderr, "fix.so: refused by trust policy "+dir) || !strings.Contains(stderr, tt.why) {
				t.Errorf("%s %s: exit %d, want %d saying %q\n%s", action, tt.name, code, ExitUsage, tt.why, stderr)
			}
		}
	}
	for i, st := range f.staging {
		if m, _ := filepath.Glob(filepath.Join(st, "*")); len(m) > 0 {
			t.Errorf("host%02d got files from refused rollouts: %v", i+1, m)
		}
	}

	good := signedContainer(t, key, "fix.so", false)
	code, out, _, _ := cliRun(ctx, t, append([]string{"plan", good}, args...)...)
	if code != 0 || !strings.Contains(out, "trigger --json -p '*' '--trusted="+dir+"' ") {
		t.Errorf("plan: exit %d, no --trusted for the agent\n%s", code, out)
	}
	code, out, _, _ = cliRun(ctx, t, append([]string{"apply", "--json", good}, args...)...)
	hosts, sum := decodeRecords(t, out)
	if code != 0 || sum.OK != 3 || classes(hosts) != "host01=success host02=success host03=success" {
		t.Fatalf("apply: exit %d, %s, %+v", code, classes(hosts), sum)
	}
	for i, st := range f.staging {
		if b, err := os.ReadFile(filepath.Join(st, "trusted")); err != nil || strings.TrimSpace(string(b)) != dir {
			t.Errorf("host%02d: agent run with --trusted=%q (%v), want %s", i+1, b, err, dir)
		}
	}
	// A retry of a run with --trusted keeps it, given or not.
	results := filepath.Join(t.TempDir(), "run.ndjson")
	f.setMode(t, 1, "error")
	cliRun(ctx, t, append([]string{"apply", good, "--results", results}, args...)...)
	f.setMode(t, 1, "ok")
	os.Remove(filepath.Join(f.staging[1], "trusted"))
	code, out, _, _ = cliRun(ctx, t, append([]string{"retry", "--results", results}, withoutCanary(f.args)...)...)
	if b, err := os.ReadFile(filepath.Join(f.staging[1], "trusted")); code != 0 || err != nil || strings.TrimSpace(string(b)) != dir {
		t.Errorf("retry without --trusted: exit %d, agent run with --trusted=%q (%v), want %s", code, b, err, dir)
	}

	code, _, _, _ = cliRun(ctx, t, append([]string{"revert", good}, args...)...)
	if code != 0 {
		t.Errorf("revert under --trusted: exit %d", code)
	}

	// A policy folder that is missing or writable by others is bad usage.
	loose := trustDir(t, pub)
	os.Chmod(loose, 0o777)
	for _, d := range []string{filepath.Join(dir, "missing"), loose} {
		code, _, stderr, _ := cliRun(ctx, t, append([]string{"apply", good}, append(f.args, "--trusted", d)...)...)
		if code != ExitUsage || !strings.Contains(stderr, "trust policy") {
			t.Errorf("--trusted %s: exit %d\n%s", d, code, stderr)
		}
	}
}

// TestE2E_OpenSSH_Trusted: --trusted DIR over real sshd hosts and the
// real agent. DIR is checked on the controller and again by the agent on
// each host, against the host's own DIR (each host sees a private
// /var/lib/ulp): host02's trusts another key, so its agent refuses the
// container that the controller accepted, while the others apply it. An
// unsigned container is refused on the controller: no host gets it. Once
// host02 trusts the key, retry finishes the job there.
func TestE2E_OpenSSH_Trusted(t *testing.T) {
	testenv.Require(t, testenv.Root, testenv.Ptrace, testenv.CC, testenv.SSHD, testenv.Build)
	fx := triggertest.Build(t)
	rt := testenv.Artifact(t, "libpulp.so.0")
	f, args := realFleet(t, 3, testenv.Artifact(t, "ulp"))
	pub, key := newSignKey(t)
	otherPub, _ := newSignKey(t)

	// The same path on the controller and, privately, on every host.
	name := "trusted-" + strconv.Itoa(os.Getpid()) + "-" + filepath.Base(t.TempDir())
	dir := filepath.Join(sshfleet.StateDir, name)
	if _, err := os.Stat(sshfleet.StateDir); err != nil {
		if err := os.MkdirAll(sshfleet.StateDir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(sshfleet.StateDir) }) // only when empty
	}
	writePolicy := func(d string, keys ...ed25519.PublicKey) {
		t.Helper()
		os.RemoveAll(d)
		if err := os.CopyFS(d, os.DirFS(trustDir(t, keys...))); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writePolicy(dir, pub)
	t.Cleanup(func() { os.RemoveAll(dir) })
	writePolicy(filepath.Join(f.Hosts[0].Root, name), pub)
	writePolicy(filepath.Join(f.Hosts[1].Root, name), otherPub)
	writePolicy(filepath.Join(f.Hosts[2].Root, name), pub)

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
	signedDir := t.TempDir()
	good := filepath.Join(signedDir, "lp200.so")
	b, _ := os.ReadFile(fx.LP["lp200"])
	if b, err := sign.Sign(b, key); err != nil || os.WriteFile(good, b, 0o644) != nil {
		t.Fatal(err)
	}
	results := filepath.Join(t.TempDir(), "run.ndjson")
	args = append(args, "--trusted", dir, "--results", results, "--canary", "0", "--max-failures", "10")
	ctx := t.Context()

	// Unsigned: refused on the controller, nothing reaches any host.
	code, _, stderr, _ := cliRun(ctx, t, append(append([]string{"apply"}, args...), fx.LP["lp300"])...)
	if code != ExitUsage || !strings.Contains(stderr, "lp300.so: refused by trust policy "+dir+": container is not signed") {
		t.Errorf("unsigned: exit %d\n%s", code, stderr)
	}
	for _, h := range f.Hosts {
		if m, _ := filepath.Glob(filepath.Join(h.Root, "patches", "*", "lp300.so")); len(m) > 0 {
			t.Errorf("%s got the refused container: %v", h.Name, m)
		}
	}
	values("100", "100", "100")

	code, out, _, _ := cliRun(ctx, t, append(append([]string{"apply"}, args...), "--json", good)...)
	hosts, _ := decodeRecords(t, out)
	if code != ExitFailure || classes(hosts) != "host01=success host02=patch_failed host03=success" {
		t.Fatalf("apply: exit %d, %s", code, classes(hosts))
	}
	if ps := hosts[1].Processes; len(ps) != 1 || !strings.Contains(ps[0].Reason, "refused by trust policy "+dir) ||
		!strings.Contains(ps[0].Reason, "untrusted key") {
		t.Errorf("host02's agent: %+v", ps)
	}
	values("200", "100", "200")

	writePolicy(filepath.Join(f.Hosts[1].Root, name), pub)
	code, out, _, _ = cliRun(ctx, t, append(append([]string{"retry"}, args...), "--json")...)
	if hosts, _ := decodeRecords(t, out); code != 0 || classes(hosts) != "host02=success" {
		t.Errorf("retry: exit %d, %s", code, classes(hosts))
	}
	values("200", "200", "200")
}
