package recipe

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// A Debian source package name and version, as dpkg and apt print them.
var (
	debName    = regexp.MustCompile(`^[a-z0-9][a-z0-9.+-]+$`)
	debVersion = regexp.MustCompile(`^[0-9A-Za-z.+~:-]+$`)
)

// ErrNoSource means the source a library was built from cannot be fetched:
// no installed package owns the file, or apt has no source of that version.
var ErrNoSource = errors.New("no source")

// SourceOf returns the Debian source package and version that the
// installed library lib was built from: the package dpkg -S names for the
// file, and its source:Package and source:Version (a binNMU's source
// version, without +bN).
func SourceOf(ctx context.Context, lib string) (pkg, version string, err error) {
	var owner string
	for _, p := range dpkgPaths(lib) {
		out, err := runTool(ctx, "/", toolEnv(), "dpkg", "-S", p)
		if err != nil {
			continue
		}
		line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		if name, _, ok := strings.Cut(line, ": "); ok && !strings.Contains(name, ",") {
			owner = name
			break
		}
	}
	if owner == "" {
		return "", "", fmt.Errorf("%w: no installed package owns %s (dpkg -S); give --source", ErrNoSource, lib)
	}
	out, err := runTool(ctx, "/", toolEnv(), "dpkg-query", "-W", "-f", "${source:Package}\t${source:Version}", owner)
	if err != nil {
		return "", "", fmt.Errorf("source of %s: %w", owner, err)
	}
	pkg, version, _ = strings.Cut(strings.TrimSpace(string(out)), "\t")
	if !debName.MatchString(pkg) || !debVersion.MatchString(version) {
		return "", "", fmt.Errorf("source of %s: dpkg-query gives %q", owner, out)
	}
	return pkg, version, nil
}

// dpkgPaths are the names under which dpkg may list lib: as given, with
// its links resolved, and each with and without /usr (merged /usr: a
// package lists /lib/x86_64-linux-gnu/..., another /usr/lib/...).
func dpkgPaths(lib string) []string {
	var paths []string
	add := func(p string) {
		for _, q := range []string{p, strings.TrimPrefix(p, "/usr"), "/usr" + p} {
			if strings.HasPrefix(q, "/") && !slices.Contains(paths, q) {
				paths = append(paths, q)
			}
		}
	}
	if abs, err := filepath.Abs(lib); err == nil {
		add(abs)
	}
	if real, err := filepath.EvalSymlinks(lib); err == nil {
		add(real)
	}
	return paths
}

// FetchSource returns the tree of source package pkg at version, as
// `apt-get source` unpacks it (Debian's patches applied), in
// cache/PKG_VERSION/, fetching it on first use. Processes fetching the same
// tree wait for each other; a failed fetch leaves nothing behind. It needs
// deb-src entries in apt's sources.
func FetchSource(ctx context.Context, pkg, version, cache string) (string, error) {
	if !debName.MatchString(pkg) || !debVersion.MatchString(version) {
		return "", fmt.Errorf("bad source package %q or version %q", pkg, version)
	}
	dir := filepath.Join(cache, pkg+"_"+version)
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := flock(ctx, lock); err != nil {
		return "", fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	if _, err := os.Stat(dir); err != nil {
		tmp := dir + ".tmp"
		if err := os.RemoveAll(tmp); err != nil {
			return "", err
		}
		if err := os.Mkdir(tmp, 0o755); err != nil {
			return "", err
		}
		if _, err := runTool(ctx, tmp, toolEnv("DEBIAN_FRONTEND=noninteractive"), "apt-get", "-qq", "source", "--only-source", pkg+"="+version); err != nil {
			os.RemoveAll(tmp)
			return "", fmt.Errorf("%w: apt-get source %s=%s (are there deb-src entries? make deb-src adds them): %w", ErrNoSource, pkg, version, err)
		}
		if err := os.Rename(tmp, dir); err != nil {
			return "", err
		}
	}
	trees, err := filepath.Glob(filepath.Join(dir, pkg+"-*"))
	if err != nil {
		return "", err
	}
	var found []string
	for _, t := range trees {
		if fi, err := os.Stat(t); err == nil && fi.IsDir() {
			found = append(found, t)
		}
	}
	if len(found) != 1 {
		return "", fmt.Errorf("apt-get source %s=%s unpacked %d trees in %s", pkg, version, len(found), dir)
	}
	return found[0], nil
}

// Fetch returns the source tree the installed library lib was built from
// (SourceOf, then FetchSource into cache): what `ulp build` uses when no
// --source is given.
func Fetch(ctx context.Context, lib, cache string) (string, error) {
	pkg, version, err := SourceOf(ctx, lib)
	if err != nil {
		return "", err
	}
	return FetchSource(ctx, pkg, version, cache)
}

// DefaultSourceCache is the folder Fetch keeps source trees in: ulp/sources
// under the user's cache folder ($XDG_CACHE_HOME, ~/.cache).
func DefaultSourceCache() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "ulp", "sources"), nil
}
