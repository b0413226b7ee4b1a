package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"ulp/internal/testenv"
	"ulp/livepatch/packer/packertest"
	"ulp/livepatch/report"
	"ulp/livepatch/sign"
	"ulp/livepatch/trigger/triggertest"
)

// copyUnsigned copies the sample container into dir and returns its path.
func copyUnsigned(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "sign", "testdata", "unsigned.so"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "fix.so")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSignCommands_EndToEnd(t *testing.T) {
	dir := t.TempDir()
	so := copyUnsigned(t, dir)
	unsigned, _ := os.ReadFile(so)
	key := filepath.Join(dir, "vendor")
	out, _, code := runBuildCommand(t, "keygen", key)
	if code != 0 || !strings.Contains(out, "vendor.pub (SHA256:") {
		t.Fatalf("keygen: %d %q", code, out)
	}
	if fi, err := os.Stat(key + ".key"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key file: %v %v", fi.Mode(), err)
	}
	if _, stderr, code := runBuildCommand(t, "keygen", key); code != report.ExitUsage || !strings.Contains(stderr, "already exists") {
		t.Errorf("keygen over existing files: %d %q", code, stderr)
	}
	other := filepath.Join(dir, "other")
	if _, _, code := runBuildCommand(t, "keygen", other); code != 0 {
		t.Fatal("second keygen failed")
	}

	// Before signing: verify says "not signed", exit 1.
	if _, stderr, code := runBuildCommand(t, "verify", "--pub", key+".pub", so); code != report.ExitFailure || !strings.Contains(stderr, "container is not signed") {
		t.Errorf("verify unsigned: %d %q", code, stderr)
	}
	out, stderr, code := runBuildCommand(t, "sign", "--key", key+".key", so)
	if code != 0 || !strings.HasPrefix(out, "signed "+so+": patch ") {
		t.Fatalf("sign: %d %q %q", code, out, stderr)
	}
	if got := packertest.ListDir(t, dir); !slices.Equal(got, []string{"fix.so", "other.key", "other.pub", "vendor.key", "vendor.pub"}) {
		t.Errorf("folder holds %v (a temporary left?)", got)
	}
	if out, _, code := runBuildCommand(t, "verify", "--pub", key+".pub", so); code != 0 || out != so+": good signature by "+fingerprintOf(t, key+".pub")+"\n" {
		t.Errorf("verify: %d %q", code, out)
	}
	trusted := filepath.Join(dir, "trusted.d")
	os.Mkdir(trusted, 0o755)
	pub, _ := os.ReadFile(key + ".pub")
	os.WriteFile(filepath.Join(trusted, "vendor.pub"), pub, 0o644)
	if out, _, code := runBuildCommand(t, "verify", "--trusted", trusted, so); code != 0 || !strings.Contains(out, "good signature by vendor.pub") {
		t.Errorf("verify --trusted: %d %q", code, out)
	}
	if _, stderr, code := runBuildCommand(t, "verify", "--pub", other+".pub", so); code != report.ExitFailure || !strings.Contains(stderr, "untrusted key") {
		t.Errorf("verify with the wrong key: %d %q", code, stderr)
	}
	// The container still dumps, and -o leaves the input alone.
	if _, _, code := runBuildCommand(t, "dump", so); code != 0 {
		t.Errorf("dump of a signed container: %d", code)
	}
	again := filepath.Join(dir, "again.so")
	os.WriteFile(filepath.Join(dir, "plain.so"), unsigned, 0o644)
	if _, _, code := runBuildCommand(t, "sign", "--key", other+".key", "-o", again, filepath.Join(dir, "plain.so")); code != 0 {
		t.Fatal("sign -o failed")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "plain.so")); !bytes.Equal(b, unsigned) {
		t.Error("sign -o changed its input")
	}
	if _, _, code := runBuildCommand(t, "verify", "--pub", key+".pub", "--pub", other+".pub", again); code != 0 {
		t.Errorf("verify with two --pub: %d", code)
	}

	// One flipped byte in the code: refused.
	b, _ := os.ReadFile(so)
	b[0x1000] ^= 0xff
	tampered := filepath.Join(dir, "tampered.so")
	os.WriteFile(tampered, b, 0o644)
	if _, stderr, code := runBuildCommand(t, "verify", "--pub", key+".pub", tampered); code != report.ExitFailure || !strings.Contains(stderr, "signature does not match") {
		t.Errorf("verify tampered: %d %q", code, stderr)
	}

	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"sign without key", []string{"sign", so}, "needs --key"},
		{"sign with a public key", []string{"sign", "--key", key + ".pub", so}, "private key readable or writable by group or others (mode 0644)"},
		{"sign with a private key in PEM of another type", []string{"sign", "--key", keyOf(t, dir, key+".pub"), so}, "not an ed25519 key"},
		{"sign a non-container", []string{"sign", "--key", key + ".key", key + ".pub"}, "not an ELF file"},
		{"verify without keys", []string{"verify", so}, "needs --pub PUB or --trusted DIR"},
		{"verify both", []string{"verify", "--pub", key + ".pub", "--trusted", trusted, so}, "mutually exclusive"},
		{"verify missing folder", []string{"verify", "--trusted", filepath.Join(dir, "nope"), so}, "no such file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, stderr, code := runBuildCommand(t, tt.args...); code != report.ExitUsage || !strings.Contains(stderr, tt.want) {
				t.Errorf("%v: %d %q, want exit 2 and %q", tt.args, code, stderr, tt.want)
			}
		})
	}
}

func fingerprintOf(t *testing.T, pubFile string) string {
	t.Helper()
	b, err := os.ReadFile(pubFile)
	if err != nil {
		t.Fatal(err)
	}
	k, err := sign.ParsePublicKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return sign.Fingerprint(k)
}

// smallTmpfs mounts a tmpfs of size bytes on a fresh folder, unmounted at
// cleanup.
func smallTmpfs(t *testing.T, size string) string {
	t.Helper()
	testenv.Require(t, testenv.Root)
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fill writes a file into dir until the file system is full.
func fill(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 512)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill: %v", err)
			}
			return
		}
	}
}

// TestDiskFull_PackAndSign: packing or signing onto a full file system is a
// clear error; the original file is intact and no temporary is left.
func TestDiskFull_PackAndSign(t *testing.T) {
	mnt := smallTmpfs(t, "64k")
	fx := packertest.Build(t, packertest.Options{})
	dsc := fx.WriteDsc(t, "full.dsc", cliDsc)
	// A container packed earlier sits on the small file system.
	if _, stderr, code := runBuildCommand(t, "packer", dsc, "-o", filepath.Join(mnt, "fix.so")); code != 0 {
		t.Fatalf("first pack: %d %s", code, stderr)
	}
	orig, err := os.ReadFile(filepath.Join(mnt, "fix.so"))
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(t.TempDir(), "k")
	if _, _, code := runBuildCommand(t, "keygen", key); code != 0 {
		t.Fatal("keygen failed")
	}
	fill(t, mnt)
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"packer", []string{"packer", dsc, "-o", filepath.Join(mnt, "fix.so")}},
		{"sign", []string{"sign", "--key", key + ".key", filepath.Join(mnt, "fix.so")}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, code := runBuildCommand(t, tt.args...)
			if code != report.ExitFailure || !strings.Contains(stderr, "no space left on device") {
				t.Errorf("%s on a full disk: exit %d, stderr %q; want 1 and ENOSPC", tt.name, code, stderr)
			}
			if b, err := os.ReadFile(filepath.Join(mnt, "fix.so")); err != nil || !bytes.Equal(b, orig) {
				t.Errorf("original changed: %v", err)
			}
			if got := packertest.ListDir(t, mnt); !slices.Equal(got, []string{"filler", "fix.so"}) {
				t.Errorf("file system holds %v, want [filler fix.so]", got)
			}
		})
	}
}

// TestTriggerCommand_TrustPolicy: with --trusted, ulp trigger refuses an
// unsigned container (an ERROR that says so, nothing mapped) and applies
// the same container once signed by a key of the folder.
func TestTriggerCommand_TrustPolicy(t *testing.T) {
	testenv.Require(t, testenv.Root, testenv.Ptrace, testenv.CC)
	fx := triggertest.Build(t)
	p := triggertest.Start(t, nil, fx.App)
	pid := strconv.Itoa(p.PID)
	dir := t.TempDir()
	key := filepath.Join(dir, "vendor")
	if _, _, code := runBuildCommand(t, "keygen", key); code != 0 {
		t.Fatal("keygen failed")
	}
	trusted := filepath.Join(dir, "trusted.d")
	os.Mkdir(trusted, 0o755)
	pub, _ := os.ReadFile(key + ".pub")
	os.WriteFile(filepath.Join(trusted, "vendor.pub"), pub, 0o644)

	stdout, stderr, code := inspectRun(t, "trigger", "--trusted", trusted, "-p", pid, fx.LP["lp200"])
	if code != report.ExitFailure || !strings.HasPrefix(stdout, "ERROR refused by trust policy "+trusted+": ") || !strings.Contains(stdout, "container is not signed") {
		t.Errorf("unsigned: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if triggertest.Mapped(t, p.PID, fx.LP["lp200"]) {
		t.Error("the unsigned container was mapped")
	}
	p.Expect(t, map[string]string{"value": "100"})

	if _, stderr, code := inspectRun(t, "trigger", "--trusted", filepath.Join(dir, "missing"), "-p", pid, fx.LP["lp200"]); code != report.ExitUsage || !strings.Contains(stderr, "no such file") {
		t.Errorf("missing policy folder: exit %d, stderr %q", code, stderr)
	}

	if _, stderr, code := runBuildCommand(t, "sign", "--key", key+".key", fx.LP["lp200"]); code != 0 {
		t.Fatalf("sign: %s", stderr)
	}
	if stdout, stderr, code := inspectRun(t, "trigger", "--trusted", trusted, "-p", pid, fx.LP["lp200"]); code != 0 || stdout != "SUCCESS\n" {
		t.Fatalf("signed: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	p.Expect(t, map[string]string{"value": "200"})
	p.Untraced(t)
}

// keyOf copies file into dir as a 0600 file, as a private key would be.
func keyOf(t *testing.T, dir, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "copy-"+filepath.Base(file))
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSignCommands_OpenSSLKeys: keys made by openssl work with ulp sign and
// ulp verify, and the public key ulp keygen writes is the one openssl
// derives from its private key.
func TestSignCommands_OpenSSLKeys(t *testing.T) {
	dir := t.TempDir()
	openssl := func(args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		if out, err := exec.CommandContext(ctx, "openssl", args...).CombinedOutput(); err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
	}
	key, pub := filepath.Join(dir, "o.key"), filepath.Join(dir, "o.pub")
	openssl("genpkey", "-algorithm", "ed25519", "-out", key)
	os.Chmod(key, 0o600)
	openssl("pkey", "-in", key, "-pubout", "-out", pub)
	so := copyUnsigned(t, dir)
	if _, stderr, code := runBuildCommand(t, "sign", "--key", key, so); code != 0 {
		t.Fatalf("sign with an openssl key: %d %s", code, stderr)
	}
	if _, stderr, code := runBuildCommand(t, "verify", "--pub", pub, so); code != 0 {
		t.Fatalf("verify with an openssl public key: %d %s", code, stderr)
	}

	ours := filepath.Join(dir, "ours")
	if _, _, code := runBuildCommand(t, "keygen", ours); code != 0 {
		t.Fatal("keygen failed")
	}
	derived := filepath.Join(dir, "derived.pub")
	openssl("pkey", "-in", ours+".key", "-pubout", "-out", derived)
	a, _ := os.ReadFile(ours + ".pub")
	b, _ := os.ReadFile(derived)
	if !bytes.Equal(a, b) {
		t.Errorf("ulp keygen's public key\n%s differs from openssl's\n%s", a, b)
	}
}

// TestUlpBinary_SignAndTrustPolicy drives the static build/ulp itself:
// keygen, sign, verify, and trigger under a trust policy on a real process.
func TestUlpBinary_SignAndTrustPolicy(t *testing.T) {
	ulp := testenv.Artifact(t, "ulp")
	testenv.Require(t, testenv.Root, testenv.Ptrace, testenv.CC)
	fx := triggertest.Build(t)
	p := triggertest.Start(t, nil, fx.App)
	run := func(args ...string) (string, int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, ulp, args...).CombinedOutput()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("ulp %v: %v", args, err)
		}
		if ee != nil {
			return string(out), ee.ExitCode()
		}
		return string(out), 0
	}
	dir := t.TempDir()
	key := filepath.Join(dir, "vendor")
	if out, code := run("keygen", key); code != 0 {
		t.Fatalf("keygen: %d %s", code, out)
	}
	trusted := filepath.Join(dir, "trusted.d")
	os.Mkdir(trusted, 0o755)
	pub, _ := os.ReadFile(key + ".pub")
	os.WriteFile(filepath.Join(trusted, "vendor.pub"), pub, 0o644)
	lp := fx.LP["lp200"]
	pid := strconv.Itoa(p.PID)

	if out, code := run("trigger", "--trusted", trusted, "-p", pid, lp); code != report.ExitFailure || !strings.Contains(out, "ERROR refused by trust policy") {
		t.Errorf("unsigned: %d %q", code, out)
	}
	if triggertest.Mapped(t, p.PID, lp) {
		t.Error("unsigned container mapped")
	}
	if out, code := run("sign", "--key", key+".key", lp); code != 0 {
		t.Fatalf("sign: %d %s", code, out)
	}
	if out, code := run("verify", "--trusted", trusted, lp); code != 0 || !strings.Contains(out, "good signature by vendor.pub") {
		t.Errorf("verify: %d %q", code, out)
	}
	if out, code := run("trigger", "--trusted", trusted, "-p", pid, lp); code != 0 || out != "SUCCESS\n" {
		t.Fatalf("signed: %d %q", code, out)
	}
	p.Expect(t, map[string]string{"value": "200"})
	p.Untraced(t)
}
