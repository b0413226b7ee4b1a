package recipe_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ulp/builder/recipe"
	"ulp/internal/testenv"
)

func dpkgQuery(t *testing.T, format, pkg string) string {
	t.Helper()
	out, err := exec.Command("dpkg-query", "-W", "-f", format, pkg).Output()
	if err != nil {
		t.Fatalf("dpkg-query %s: %v", pkg, err)
	}
	return strings.TrimSpace(string(out))
}

func TestSourceOf(t *testing.T) {
	testenv.Require(t, testenv.DebSrc)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	want := dpkgQuery(t, "${source:Version}", "libssl3")
	for _, lib := range []string{"/usr/lib/x86_64-linux-gnu/libcrypto.so.3", "/lib/x86_64-linux-gnu/libcrypto.so.3"} {
		pkg, version, err := recipe.SourceOf(ctx, lib)
		if err != nil || pkg != "openssl" || version != want {
			t.Errorf("SourceOf(%s) = %q %q %v, want openssl %s", lib, pkg, version, err, want)
		}
	}
	stray := filepath.Join(t.TempDir(), "libstray.so.1")
	if err := os.WriteFile(stray, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := recipe.SourceOf(ctx, stray); !errors.Is(err, recipe.ErrNoSource) {
		t.Errorf("SourceOf(a file no package owns) = %v, want ErrNoSource", err)
	}
}

// TestFetchSource fetches the source of the installed bzip2 (small, and
// dpkg itself needs libbz2-1.0) into a fresh cache.
func TestFetchSource(t *testing.T) {
	testenv.Require(t, testenv.DebSrc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pkg, version, err := recipe.SourceOf(ctx, "/lib/x86_64-linux-gnu/libbz2.so.1.0")
	if err != nil || pkg != "bzip2" {
		t.Fatalf("SourceOf(libbz2) = %q %q %v", pkg, version, err)
	}
	cache := t.TempDir()
	tree, err := recipe.FetchSource(ctx, pkg, version, cache)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(tree, "debian", "changelog")); err != nil || filepath.Dir(filepath.Dir(tree)) != cache {
		t.Errorf("FetchSource = %s: %v", tree, err)
	}
	start := time.Now()
	again, err := recipe.FetchSource(ctx, pkg, version, cache)
	if err != nil || again != tree || time.Since(start) > 5*time.Second {
		t.Errorf("second FetchSource = %s, %v after %v: the cache was not used", again, err, time.Since(start))
	}
	if _, err := recipe.FetchSource(ctx, pkg, "0.0.0-0ulp1", cache); !errors.Is(err, recipe.ErrNoSource) {
		t.Errorf("FetchSource of a version apt does not have = %v, want ErrNoSource", err)
	}
	if m, _ := filepath.Glob(filepath.Join(cache, pkg+"_0.0.0-0ulp1*")); len(m) != 1 || !strings.HasSuffix(m[0], ".lock") {
		t.Errorf("a failed fetch left %v", m)
	}
	for _, bad := range [][2]string{{"../x", "1"}, {"bzip2", "1;rm"}, {"-o", "1"}} {
		if _, err := recipe.FetchSource(ctx, bad[0], bad[1], cache); err == nil {
			t.Errorf("FetchSource(%q, %q) accepted", bad[0], bad[1])
		}
	}
}
