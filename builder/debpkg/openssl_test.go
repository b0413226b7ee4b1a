package debpkg_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ulp/builder/debiantest"
	"ulp/builder/debpkg"
	"ulp/internal/testenv"
	"ulp/livepatch/container"
)

// TestOpenSSLFix wraps a real fix into a package: ulp build makes the
// livepatch of Debian's fix of PKCS7_verify (CVE-2026-45447) for the stock
// libcrypto.so.3 of libssl3 3.0.17-1~deb12u2 (extracted, not installed),
// and ulp deb, given that .deb, derives the package's name, dependency and
// description from it. Without the .deb it is refused: the installed
// libssl3 is another build.
func TestOpenSSLFix(t *testing.T) {
	testenv.Require(t, testenv.DebSrc, testenv.CC, testenv.Build)
	src := debiantest.Source(t, "openssl", debiantest.OpenSSLOld)
	root := debiantest.Extract(t, "libssl3", debiantest.OpenSSLOld)
	debs, err := filepath.Glob(filepath.Join(filepath.Dir(root), "libssl3_*.deb"))
	if err != nil || len(debs) != 1 {
		t.Fatalf("the libssl3 package next to %s: %q, %v", root, debs, err)
	}
	dir := t.TempDir()
	lp := filepath.Join(dir, "pkcs7-verify.so")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	build := exec.CommandContext(ctx, testenv.Artifact(t, "ulp"), "build", "--target", filepath.Join(debiantest.LibDir(root), "libcrypto.so.3"),
		"--source", src, "--patch", filepath.Join(testenv.ModuleRoot(), "builder/debiantest/testdata/openssl/CVE-2026-45447-pkcs7-verify.patch"), "-o", lp)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("ulp build: %v\n%s", err, out)
	}
	t.Logf("ulp build: %v", time.Since(start).Round(time.Millisecond))
	c, err := container.Open(lp)
	if err != nil {
		t.Fatal(err)
	}

	deb := filepath.Join(dir, "lp.deb")
	out := ulpDeb(t, "--library-deb", debs[0], "-o", deb, lp)
	t.Logf("ulp deb:\n%s", out)
	const name = "ulp-livepatch-openssl-3.0.17-1-deb12u2"
	id := fmt.Sprintf("ulp-livepatch-buildid-%x", c.Apply.Target.BuildID)
	for f, want := range map[string]string{
		"Package":   name,
		"Version":   "1",
		"Depends":   "ulp, libssl3 (>= " + debiantest.OpenSSLOld + ")",
		"Provides":  id,
		"Conflicts": id,
	} {
		if got := field(t, deb, f); got != want {
			t.Errorf("%s: %q, want %q", f, got, want)
		}
	}
	if desc := field(t, deb, "Description"); !strings.HasPrefix(desc, "livepatches for libssl3 "+debiantest.OpenSSLOld+": CVE-2026-45447\n") ||
		!strings.Contains(desc, name+"_pkcs7-verify.so: libcrypto.so.3 (build-id ") {
		t.Errorf("Description:\n%s", desc)
	}
	want := []string{"-rw-r--r-- root/root " + debpkg.Root + "/" + name + "/libcrypto.so.3/" + name + "_pkcs7-verify.so"}
	if got := contents(t, deb); len(got) != 1 || got[0] != want[0] {
		t.Errorf("dpkg-deb -c: %q, want %q", got, want)
	}

	// An upgrade of libssl3 triggers the package (the libcrypto.so.3 it
	// installs).
	ctl := filepath.Join(dir, "ctl")
	run(t, nil, "dpkg-deb", "-e", deb, ctl)
	if b, _ := os.ReadFile(filepath.Join(ctl, "triggers")); string(b) != "interest-noawait /usr/lib/x86_64-linux-gnu/libcrypto.so.3\n" {
		t.Errorf("triggers = %q", b)
	}

	cmd := exec.Command(testenv.Artifact(t, "ulp"), "deb", "-o", filepath.Join(dir, "refused.deb"), lp)
	b, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 ||
		!strings.Contains(string(b), "no installed package holds the target library libcrypto.so.3 with build-id") {
		t.Errorf("ulp deb without --library-deb: %v\n%s\nwant exit status 2: the installed libcrypto.so.3 is another build", err, b)
	}
}
