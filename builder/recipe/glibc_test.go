package recipe_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ulp/builder/recipe"
)

// fakeGlibc makes the files by which a glibc tree is recognised.
func fakeGlibc(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, f := range []string{"version.h", "csu/libc-start.c", "debian/rules.d/build.mk", "posix/Makefile"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// TestGlibc_Refusals: what the glibc recipe refuses before configuring
// anything (make test-glibc runs the recipe on Debian's tree).
func TestGlibc_Refusals(t *testing.T) {
	root := fakeGlibc(t)
	if !recipe.IsGlibc(root) || recipe.IsGlibc(t.TempDir()) || recipe.IsOpenSSL(root) {
		t.Fatal("IsGlibc does not tell a glibc tree apart")
	}
	if r, err := recipe.Open("auto", root, "/lib/x86_64-linux-gnu/libc.so.6"); err != nil || r.Name() != "glibc" {
		t.Errorf("Open(auto) = %v, %v; want the glibc recipe", r, err)
	}
	for _, lib := range []string{"libm.so.6", "ld-linux-x86-64.so.2"} {
		if _, err := recipe.NewGlibc(root, lib); err == nil || !strings.Contains(err.Error(), "only libc.so.6") {
			t.Errorf("NewGlibc(%s) = %v, want a refusal", lib, err)
		}
	}
	if _, err := recipe.NewGlibc(t.TempDir(), "libc.so.6"); err == nil || !strings.Contains(err.Error(), "not a glibc tree") {
		t.Errorf("NewGlibc(an empty folder) = %v", err)
	}
	g, err := recipe.NewGlibc(root, "libc.so.6")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ file, want string }{
		{"sysdeps/unix/sysv/linux/sched_getcpu.c", "only C files of glibc's top-level folders"},
		{"posix/wordexp.h", "only C files of glibc's top-level folders"},
		{"wordexp.c", "only C files of glibc's top-level folders"},
		{"nofolder/x.c", "its folder has no Makefile"},
		{"../posix/wordexp.c", "not a clean path"},
	} {
		if _, err := g.Command(context.Background(), tc.file); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Command(%q) = %v, want an error saying %q", tc.file, err, tc.want)
		}
	}
}
