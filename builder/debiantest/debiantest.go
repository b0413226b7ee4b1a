package debiantest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"ulp/builder/recipe"
	"ulp/internal/testenv"
)

// Versions of Debian 12's openssl the tests use (all in bookworm and
// bookworm-security; `apt-cache madison libssl3`).
const (
	// OpenSSLOld is the version whose stock libraries the tests patch: its
	// source is complete and its libssl3 binary reachable.
	OpenSSLOld = "3.0.17-1~deb12u2"
	// OpenSSLFixed carries the CVE fixes (debian/patches) the tests backport.
	OpenSSLFixed = "3.0.20-1~deb12u2"
	// GlibcOld is the version of glibc whose stock libc.so.6 the glibc test
	// patches (make test-glibc), with a fix of 2.36-9+deb12u14.
	GlibcOld = "2.36-9+deb12u7"
)

// fetchTimeout bounds one apt-get run.
const fetchTimeout = 5 * time.Minute

// CacheDir is the folder fetched packages are kept in: debian-cache under
// the build folder.
func CacheDir() string { return filepath.Join(testenv.BuildDir(), "debian-cache") }

var versionRE = regexp.MustCompile(`^[0-9A-Za-z.+~:-]+$`)
var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.+-]+$`)

// Source returns the tree `apt-get source pkg=version` unpacks (Debian's
// patches applied), fetching it into the cache on first use
// (recipe.FetchSource). Callers must not modify the tree's sources (recipes
// add their build folder to it).
func Source(t testing.TB, pkg, version string) string {
	t.Helper()
	testenv.Require(t, testenv.DebSrc)
	ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
	defer cancel()
	tree, err := recipe.FetchSource(ctx, pkg, version, filepath.Join(CacheDir(), "src"))
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// Extract returns the folder the files of binary package pkg=version are
// extracted into (`apt-get download`, `dpkg-deb -x`), fetching it on first
// use: e.g. Extract(t, "libssl3", OpenSSLOld) holds
// usr/lib/x86_64-linux-gnu/libcrypto.so.3.
func Extract(t testing.TB, pkg, version string) string {
	t.Helper()
	testenv.Require(t, testenv.DebSrc)
	dir := filepath.Join(CacheDir(), "deb", pkg+"_"+version)
	root, err := cached(dir, func(tmp string) error {
		if err := aptGet(tmp, "download", pkg+"="+version); err != nil {
			return err
		}
		debs, err := filepath.Glob(filepath.Join(tmp, pkg+"_*.deb"))
		if err != nil {
			return fmt.Errorf("apt-get download %s=%s: %w", pkg, version, err)
		}
		if len(debs) != 1 {
			return fmt.Errorf("apt-get download %s=%s wrote %d packages, want 1", pkg, version, len(debs))
		}
		return run(tmp, "dpkg-deb", "-x", debs[0], "root")
	}, func(dir string) (string, error) { return filepath.Join(dir, "root"), nil }, pkg, version)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// LibDir is the multiarch library folder inside an extracted package root.
func LibDir(root string) string {
	return filepath.Join(root, "usr", "lib", "x86_64-linux-gnu")
}

// cached makes dir by running fetch in a temporary sibling folder and
// renaming it into place, under a lock shared by every test process, and
// returns locate(dir).
func cached(dir string, fetch func(tmp string) error, locate func(dir string) (string, error), pkg, version string) (string, error) {
	if !nameRE.MatchString(pkg) || !versionRE.MatchString(version) {
		return "", fmt.Errorf("bad package %q or version %q", pkg, version)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	if _, err := os.Stat(dir); err == nil {
		return locate(dir)
	}
	tmp := dir + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return "", err
	}
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return "", err
	}
	if err := fetch(tmp); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("fetch %s=%s: %w", pkg, version, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	return locate(dir)
}

func aptGet(dir string, args ...string) error {
	return run(dir, "apt-get", append([]string{"-qq"}, args...)...)
}

func run(dir, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	out, err := cmd.CombinedOutput()
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("%w after %v", err, fetchTimeout)
		}
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}
