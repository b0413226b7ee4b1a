package active

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"ulp/internal/testenv"
)

// TestRuntimeCostWithoutFolder: a process whose patch-on-start folder does
// not exist pays one failed open of it, and nothing else of patch-on-start
// (no /proc/self/mem, no scan), as strace sees it.
func TestRuntimeCostWithoutFolder(t *testing.T) {
	testenv.Require(t, testenv.CC, testenv.Build)
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Fatalf("strace (make deps installs it): %v", err)
	}
	dir := t.TempDir()
	prog := filepath.Join(dir, "hello")
	src := filepath.Join(dir, "hello.c")
	if err := os.WriteFile(src, []byte("int main(void) { return 0; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.CompileC(t, prog, []string{"-O2"}, src)
	missing := filepath.Join(dir, "no-such-folder")
	out := filepath.Join(dir, "trace")
	cmd := exec.Command(strace, "-f", "-o", out, "-e", "trace=%file,%desc", prog)
	cmd.Env = append(os.Environ(), "LD_PRELOAD="+testenv.Artifact(t, "libpulp.so.0"), EnvDir+"="+missing)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var hits []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, missing) || strings.Contains(l, "/proc/self/mem") || strings.Contains(l, "getdents") {
			hits = append(hits, l)
		}
	}
	if len(hits) != 1 || !strings.Contains(hits[0], "ENOENT") {
		t.Errorf("patch-on-start system calls without the folder: %q", hits)
	}
}
