package packertest

import (
	"context"
	"embed"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ulp/internal/testenv"
)

//go:embed testdata/*.c
var sources embed.FS

// Options select the fixture variant.
type Options struct {
	// CFProtection builds the target with -fcf-protection=full, so its
	// entries start with endbr64 (entry offset 4).
	CFProtection bool
	// TargetFlags are extra cc flags for the target (e.g. "-Wl,--build-id=none").
	TargetFlags []string
	// LivepatchFlags are extra cc flags for the livepatch.
	LivepatchFlags []string
}

// Fixture holds the paths of the built files.
type Fixture struct {
	Dir       string // a fresh temporary folder holding everything
	Target    string // libtarget.so.1
	Livepatch string // livepatch.so
}

// Build compiles the target and the livepatch into a new temporary folder.
func Build(t testing.TB, o Options) *Fixture {
	t.Helper()
	testenv.Require(t, testenv.CC)
	dir := t.TempDir()
	src := writeSources(t, dir)
	fx := &Fixture{
		Dir:       dir,
		Target:    filepath.Join(dir, "libtarget.so.1"),
		Livepatch: filepath.Join(dir, "livepatch.so"),
	}
	cf := "-fcf-protection=none"
	if o.CFProtection {
		cf = "-fcf-protection=full"
	}
	targetArgs := append([]string{"-shared", "-fPIC", "-O2", "-g", cf, "-fpatchable-function-entry=16,14",
		"-Wl,-soname,libtarget.so.1", "-Wl,--build-id"}, o.TargetFlags...)
	testenv.CompileC(t, fx.Target, targetArgs, filepath.Join(src, "target.c"), filepath.Join(src, "target2.c"))
	lpArgs := append([]string{"-shared", "-fPIC", "-O2", "-Wl,--build-id"}, o.LivepatchFlags...)
	testenv.CompileC(t, fx.Livepatch, lpArgs, filepath.Join(src, "livepatch.c"))
	return fx
}

func writeSources(t testing.TB, dir string) string {
	t.Helper()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := sources.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := sources.ReadFile("testdata/" + e.Name())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return src
}

// Source returns the path of a fixture C source, written into dir.
func Source(t testing.TB, dir, name string) string {
	t.Helper()
	return filepath.Join(writeSources(t, dir), name)
}

// WriteDsc writes a description called name into the fixture folder and
// returns its path.
func (fx *Fixture) WriteDsc(t testing.TB, name, body string) string {
	t.Helper()
	p := filepath.Join(fx.Dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Probe compiles the dlopen probe program into dir and returns its path.
func Probe(t testing.TB, dir string) string {
	t.Helper()
	out := filepath.Join(dir, "probe")
	testenv.CompileC(t, out, []string{"-O1", "-ldl"}, Source(t, dir, "probe.c"))
	return out
}

// Call runs probe to dlopen so and call int fn(arg); it returns the trimmed
// output and the error of the run.
func Call(t testing.TB, probe, so, fn, arg string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, probe, so, fn, arg).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// ListDir returns the names in dir, for checks that no temporary file was
// left behind.
func ListDir(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names
}

// MakeReadOnly makes the folder dir unwritable until the test ends: mode
// 0555, plus the immutable attribute (chattr +i) when running as root,
// whom the mode does not stop.
func MakeReadOnly(t testing.TB, dir string) {
	t.Helper()
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o755) })
	if os.Geteuid() != 0 {
		return
	}
	if out, err := exec.Command("chattr", "+i", dir).CombinedOutput(); err != nil {
		t.Fatalf("chattr +i %s: %v\n%s", dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("chattr", "-i", dir).CombinedOutput(); err != nil {
			t.Errorf("chattr -i %s: %v\n%s", dir, err, out)
		}
	})
}
