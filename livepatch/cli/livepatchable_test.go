package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"ulp/internal/testenv"
	"ulp/livepatch/report"
)

// TestLivepatchable_DistroLibrary: Debian's libc.so.6 and libcrypto.so.3,
// built without the pad, are livepatchable through the entry mechanism; -v
// lists each function's mechanism or why it has none.
func TestLivepatchable_DistroLibrary(t *testing.T) {
	testenv.Require(t, testenv.CC) // make deps installs libssl-dev with the compiler
	for _, lib := range []string{"/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libcrypto.so.3"} {
		out, _, code := runBuildCommand(t, "livepatchable", lib)
		if code != 0 || !strings.Contains(out, "have the entry pad (mechanism: pad), ") ||
			!strings.Contains(out, "more can take an entry jump (mechanism: entry)") || !strings.Contains(out, " 0 of ") {
			t.Errorf("livepatchable %s: %d %q", lib, code, out)
		}
	}
	out, _, code := runBuildCommand(t, "-v", "livepatchable", "/lib/x86_64-linux-gnu/libc.so.6")
	if !regexp.MustCompile(`(?m)^strlen\t0x[0-9a-f]+\tnone\tIFUNC: the process runs the implementation its resolver picks; patch that one$`).MatchString(out) {
		t.Errorf("livepatchable -v libc.so.6: %d, no IFUNC line for strlen", code)
	}
	out, _, code = runBuildCommand(t, "-v", "livepatchable", "/usr/lib/x86_64-linux-gnu/libcrypto.so.3")
	for _, want := range []string{
		`(?m)^OPENSSL_hexchar2int\t0x[0-9a-f]+\tentry\tentry\+0$`,
		`(?m)^CRYPTO_memcmp\t0x[0-9a-f]+\tentry\tentry\+4$`,
		`(?m)^OPENSSL_version_minor\t0x[0-9a-f]+\tnone\tfunction shorter than the 5-byte jump`,
	} {
		if code != 0 || !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("livepatchable -v: %d, output lacks %s", code, want)
		}
	}
}

// TestLivepatchable_No: a library whose functions have no pad and are all
// too short for the entry jump is not livepatchable (exit status 1).
func TestLivepatchable_No(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "tiny.c")
	if err := os.WriteFile(src, []byte("void a(void) {}\nint b(void) { return 0; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lib := filepath.Join(dir, "libtiny.so")
	testenv.CompileC(t, lib, []string{"-shared", "-fPIC", "-O2", "-s", "-fcf-protection=none"}, src)
	out, _, code := runBuildCommand(t, "livepatchable", lib)
	if code != report.ExitFailure || !strings.Contains(out, "is not livepatchable: none of its 2 functions") {
		t.Errorf("livepatchable: %d %q", code, out)
	}
	out, _, _ = runBuildCommand(t, "-v", "livepatchable", lib)
	if !regexp.MustCompile(`(?m)^a\t0x[0-9a-f]+\tnone\tfunction shorter than the 5-byte jump`).MatchString(out) {
		t.Errorf("livepatchable -v: %q", out)
	}
}

// TestLivepatchable_ForgedNames: symbol names and refusal reasons are the
// file's bytes (here an `ulp extract` dump), so -v prints them escaped: a
// newline or an escape sequence in them cannot start a forged line.
func TestLivepatchable_ForgedNames(t *testing.T) {
	dump := filepath.Join(t.TempDir(), "forged\n.json")
	if err := os.WriteFile(dump, []byte(`{"schema": "ulp.extract/v1", "name": "libforged.so.1", "build_id": "01", "symbols": [
  {"name": "f\nfake\t0x1\tpad\tentry+0", "offset": 4096, "size": 32, "type": "func", "bind": "global", "pad": true},
  {"name": "g\u001b]0;title\u0007", "offset": 8192, "size": 3, "type": "func", "bind": "global", "refused": "short\nfake2\t0x2\tentry\tentry+0"}
]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, code := runBuildCommand(t, "-v", "livepatchable", dump)
	if code != 0 {
		t.Fatalf("livepatchable -v: %d %q", code, out)
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "fake") || strings.HasPrefix(l, ".json") || strings.ContainsAny(l, "\x1b\x07") {
			t.Errorf("forged line %q in\n%s", l, out)
		}
	}
	for _, want := range []string{`f\nfake\t0x1\tpad\tentry+0` + "\t0x1000\tpad\tentry+0\n", `g\x1b]0;title\a` + "\t0x2000\tnone\t" + `short\nfake2\t0x2\tentry\tentry+0` + "\n", `forged\n.json is livepatchable`} {
		if !strings.Contains(out, want) {
			t.Errorf("livepatchable -v lacks %q:\n%s", want, out)
		}
	}
}
