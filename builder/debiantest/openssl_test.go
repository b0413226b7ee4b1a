package debiantest_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"ulp/builder/debiantest"
	"ulp/builder/recipe"
	"ulp/internal/testenv"
)

// opensslFix is one real fix of Debian's openssl, built against the stock
// 3.0.17 libcrypto.so.3 and observed through the API by probe.c.
type opensslFix struct {
	lib   string   // the library it fixes
	patch string   // under testdata/openssl
	probe string   // probe.c's word for it
	cve   string   // the label ulp dump lists
	funcs []string // the functions the container replaces
}

// opensslFixes: one changes an exported function (PKCS7_verify), one a
// static function reached through a provider's dispatch table
// (aes_ocb_cipher), one a static function that reads a static table of the
// library (buf2hexstr_sep and its hexdig; the table is read-only, so the
// patch carries its own copy) and a hidden global one.
var opensslFixes = []opensslFix{
	{"libcrypto.so.3", "CVE-2026-45447-pkcs7-verify.patch", "pkcs7", "CVE-2026-45447", []string{"PKCS7_verify"}},
	{"libcrypto.so.3", "CVE-2026-45445-aes-ocb-cipher.patch", "ocb", "CVE-2026-45445", []string{"aes_ocb_cipher"}},
	{"libcrypto.so.3", "CVE-2026-31789-buf2hexstr.patch", "hex", "CVE-2026-31789", []string{"buf2hexstr_sep", "ossl_buf2hexstr_sep"}},
}

// handshakeFix is 3.0.22's change of how libssl reads handshake messages
// (no CVE): code every TLS handshake a server does runs.
var handshakeFix = opensslFix{"libssl.so.3", "ssl-handshake-buffer.patch", "", "", []string{"state_machine", "tls_get_message_body"}}

// stockOpenSSL returns the source tree and the folder of the stock
// libraries of Debian's openssl 3.0.17-1~deb12u2.
func stockOpenSSL(t *testing.T) (src, libDir string) {
	t.Helper()
	testenv.Require(t, testenv.DebSrc, testenv.CC)
	return debiantest.Source(t, "openssl", debiantest.OpenSSLOld), debiantest.LibDir(debiantest.Extract(t, "libssl3", debiantest.OpenSSLOld))
}

// ulp runs build/ulp with args, bounded by a timeout, and returns its
// output; a failure fails t.
func ulp(t *testing.T, timeout time.Duration, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, testenv.Artifact(t, "ulp"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ulp %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// buildFix runs ulp build for fix against its stock library and checks
// what the container replaces and labels.
func buildFix(t *testing.T, src, libDir, dir string, fix opensslFix) string {
	t.Helper()
	out := filepath.Join(dir, strings.TrimSuffix(fix.patch, ".patch")+".so")
	start := time.Now()
	msg := ulp(t, 10*time.Minute, "build", "--target", filepath.Join(libDir, fix.lib), "--source", src,
		"--patch", filepath.Join("testdata", "openssl", fix.patch), "-o", out)
	t.Logf("ulp build %s: %v\n%s", fix.patch, time.Since(start).Round(time.Millisecond), msg)
	dump := ulp(t, time.Minute, "dump", out)
	if fix.cve != "" && !strings.Contains(dump, "labels:             "+fix.cve) {
		t.Errorf("ulp dump %s lists no label %s:\n%s", out, fix.cve, dump)
	}
	var got []string
	for _, l := range strings.Split(dump, "\n") {
		if f := strings.Fields(l); len(f) > 2 && f[1] == "->" && strings.Contains(l, " old 0x") {
			got = append(got, f[0])
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, fix.funcs) {
		t.Errorf("%s replaces %v, want %v", fix.patch, got, fix.funcs)
	}
	return out
}

// prober is a running probe.c on the stock libraries, with the runtime.
type prober struct {
	t   *testing.T
	pid int
	in  *bufio.Writer
	out *bufio.Scanner
}

func startProbe(t *testing.T, libDir, dir string) *prober {
	t.Helper()
	testenv.Require(t, testenv.Ptrace)
	exe := filepath.Join(dir, "probe")
	testenv.CompileC(t, exe, []string{"-O1", "-Wall", "-Werror", "-Wl,--no-as-needed", "-lcrypto"}, filepath.Join("testdata", "openssl", "probe.c"))
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+libDir, "LD_PRELOAD="+testenv.Artifact(t, "libpulp.so.0"))
	stdin, stdout := testenv.StartPiped(t, cmd)
	p := &prober{t: t, pid: cmd.Process.Pid, in: bufio.NewWriter(stdin), out: bufio.NewScanner(stdout)}
	if line := p.line(); !strings.HasPrefix(line, "ready OpenSSL 3.0.17 ") {
		t.Fatalf("probe started with %q, want OpenSSL 3.0.17 (the stock library of %s)", line, debiantest.OpenSSLOld)
	}
	return p
}

// line reads the probe's next answer, failing t after 30 seconds.
func (p *prober) line() string {
	p.t.Helper()
	got := make(chan string, 1)
	go func() {
		if p.out.Scan() {
			got <- p.out.Text()
		}
		close(got)
	}()
	select {
	case l, ok := <-got:
		if !ok {
			p.t.Fatalf("probe %d ended", p.pid)
		}
		return l
	case <-time.After(30 * time.Second):
		p.t.Fatalf("probe %d did not answer within 30s", p.pid)
		return ""
	}
}

// expect asks the probe about word and fails t unless it answers want.
func (p *prober) expect(word, want string) {
	p.t.Helper()
	fmt.Fprintln(p.in, word)
	if err := p.in.Flush(); err != nil {
		p.t.Fatal(err)
	}
	if got := p.line(); got != word+" "+want {
		p.t.Errorf("probe %s: %q, want %q", word, got, word+" "+want)
	}
}

// TestOpenSSL_RealFixesLive builds livepatches from three real fixes of
// Debian's openssl (3.0.20-1~deb12u2's debian/patches, and one fix 3.0.20
// brought upstream) against the stock libcrypto.so.3 of 3.0.17-1~deb12u2,
// applies each to a running process that loaded that library from the
// extracted .deb, observes the fixed behaviour through the public API,
// reverts it and observes the old behaviour again.
func TestOpenSSL_RealFixesLive(t *testing.T) {
	src, libDir := stockOpenSSL(t)
	dir := t.TempDir()
	containers := make([]string, len(opensslFixes))
	for i, fix := range opensslFixes {
		containers[i] = buildFix(t, src, libDir, dir, fix)
	}
	if t.Failed() {
		return
	}
	p := startProbe(t, libDir, dir)
	for _, fix := range opensslFixes {
		p.expect(fix.probe, "vulnerable")
	}
	pid := fmt.Sprint(p.pid)
	for i, fix := range opensslFixes {
		if out := ulp(t, time.Minute, "trigger", "-p", pid, containers[i]); !strings.Contains(out, "SUCCESS") {
			t.Fatalf("apply %s: %s", fix.patch, out)
		}
		p.expect(fix.probe, "fixed")
		for _, other := range opensslFixes[i+1:] {
			p.expect(other.probe, "vulnerable") // each container fixes its own bug only
		}
	}
	for i, fix := range opensslFixes {
		if out := ulp(t, time.Minute, "trigger", "--revert", "-p", pid, containers[i]); !strings.Contains(out, "SUCCESS") {
			t.Fatalf("revert %s: %s", fix.patch, out)
		}
		p.expect(fix.probe, "vulnerable")
	}
	// Applied again after the revert, each still works.
	for i, fix := range opensslFixes {
		ulp(t, time.Minute, "trigger", "-p", pid, containers[i])
		p.expect(fix.probe, "fixed")
	}
}

// TestOpenSSL_RealRefusals: real fixes ulp build cannot express, and a
// library that is not the tree's build, are refused with exit status 2 and
// the reason; nothing is written.
func TestOpenSSL_RealRefusals(t *testing.T) {
	src, libDir := stockOpenSSL(t)
	fixedLib := debiantest.LibDir(debiantest.Extract(t, "libssl3", debiantest.OpenSSLFixed))
	dir := t.TempDir()
	for _, tc := range []struct {
		name, lib, patch, want string
	}{
		{"a changed header", libDir, "refuse-header-cms-aead.patch",
			"the patch changes crypto/cms/cms_local.h: only C source files (.c) may change"},
		{"a changed dispatch table", libDir, "refuse-table-CVE-2026-75803-chacha20.patch",
			"changed constant ossl_chacha20_ossl_poly1305_functions"},
		{"another build of the library", fixedLib, "CVE-2026-45447-pkcs7-verify.patch",
			"changed function PKCS7_verify is not in libcrypto.so.3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, strings.TrimSuffix(tc.patch, ".patch")+".so")
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, testenv.Artifact(t, "ulp"), "build", "--target", filepath.Join(tc.lib, "libcrypto.so.3"),
				"--source", src, "--patch", filepath.Join("testdata", "openssl", tc.patch), "-o", out)
			msg, err := cmd.CombinedOutput()
			if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 2 || !strings.Contains(string(msg), tc.want) {
				t.Errorf("ulp build %s: %v, want exit status 2 saying %q:\n%s", tc.patch, err, tc.want, msg)
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("a refused build wrote %s", out)
			}
		})
	}
	t.Run("other compiler flags", func(t *testing.T) {
		// The package's own command for the file with -O1 instead of
		// -O2, as a compile_commands.json.
		r, err := recipe.NewOpenSSL(src, "libcrypto.so.3")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd, err := r.Command(ctx, "crypto/pkcs7/pk7_smime.c")
		if err != nil {
			t.Fatal(err)
		}
		args := slices.Clone(cmd.Args)
		i := slices.Index(args, "-O2")
		if i < 0 {
			t.Fatalf("no -O2 in %q", args)
		}
		args[i] = "-O1"
		db, err := json.Marshal([]map[string]any{{"directory": cmd.Dir, "file": "../crypto/pkcs7/pk7_smime.c", "arguments": args}})
		if err != nil {
			t.Fatal(err)
		}
		cc := filepath.Join(dir, "compile_commands.json")
		if err := os.WriteFile(cc, db, 0o644); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "o1.so")
		c := exec.CommandContext(ctx, testenv.Artifact(t, "ulp"), "build", "--target", filepath.Join(libDir, "libcrypto.so.3"),
			"--compile-commands", cc, "--source", src, "--patch", filepath.Join("testdata", "openssl", "CVE-2026-45447-pkcs7-verify.patch"), "-o", out)
		msg, err := c.CombinedOutput()
		if c.ProcessState == nil || c.ProcessState.ExitCode() != 2 || !strings.Contains(string(msg), "is not in libcrypto.so.3") || !strings.Contains(string(msg), "-O1") {
			t.Errorf("ulp build with -O1: %v, want exit status 2 saying the code is not the library's and showing the command:\n%s", err, msg)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("a refused build wrote %s", out)
		}
	})
}
