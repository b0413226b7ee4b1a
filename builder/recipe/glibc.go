package recipe

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
)

// glibcRecipeVersion changes whenever this recipe configures trees
// differently.
const glibcRecipeVersion = "glibc-recipe-1"

// glibcPass is the pass of Debian's build that makes libc.so.6 (the others
// build the i386 and x32 libraries), and glibcBuildDir its folder.
const (
	glibcPass     = "libc"
	glibcBuildDir = "build-tree/amd64-libc"
)

// Glibc is the recipe of a glibc source tree unpacked by `apt-get source
// glibc` (Debian's patches applied), for libc.so.6. Its first Command runs
// Debian's own configure step of the libc pass (`debian/rules
// stamp-dir/configure_libc`: Debian's compiler, CFLAGS and configure
// options, in build-tree/amd64-libc) once, under a lock; the refresh of
// config.sub and config.guess (dh_update_autotools_config) is skipped, as
// it changes no code. A file's command is the one glibc's make runs for its
// shared-library object (SUBDIR/NAME.os), which make builds first, with the
// headers it generates. Only files of glibc's top-level folders (posix/,
// stdlib/, libio/, ...) are supported; sysdeps/ files are compiled from
// other folders and are refused.
type Glibc struct {
	root string

	mu         sync.Mutex
	configured bool
}

// IsGlibc reports whether dir looks like a glibc tree with Debian's
// packaging.
func IsGlibc(dir string) bool {
	for _, f := range []string{"version.h", "csu/libc-start.c", "debian/rules.d/build.mk"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return false
		}
	}
	return true
}

// NewGlibc returns the recipe of the glibc tree root for lib, which must be
// libc.so.6.
func NewGlibc(root, lib string) (*Glibc, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("glibc recipe: %w", err)
	}
	if !IsGlibc(root) {
		return nil, fmt.Errorf("glibc recipe: %s is not a glibc tree with Debian's packaging (version.h, csu/, debian/rules.d/build.mk; apt-get source glibc=VERSION)", root)
	}
	if name := filepath.Base(lib); name != "libc.so.6" {
		return nil, fmt.Errorf("glibc recipe: only libc.so.6 is supported, not %q", name)
	}
	return &Glibc{root: root}, nil
}

func init() {
	register("glibc", IsGlibc, func(root, target string) (Recipe, error) { return NewGlibc(root, target) })
}

// Name implements Recipe.
func (g *Glibc) Name() string { return "glibc" }

// Root implements Recipe.
func (g *Glibc) Root() string { return g.root }

// BuildDir is the folder of Debian's libc pass.
func (g *Glibc) BuildDir() string { return filepath.Join(g.root, glibcBuildDir) }

// Configure runs Debian's configure step of the libc pass unless a stamp
// says it ran for this tree and version.
func (g *Glibc) Configure(ctx context.Context) error {
	g.mu.Lock()
	done := g.configured
	g.mu.Unlock()
	if done {
		return nil
	}
	parts := []string{glibcRecipeVersion, g.root}
	for _, f := range []string{"version.h", "debian/rules", "debian/rules.d/build.mk", "debian/sysdeps/amd64.mk", "debian/sysdeps/linux.mk", "debian/changelog"} {
		b, err := os.ReadFile(filepath.Join(g.root, f))
		if err != nil {
			return fmt.Errorf("glibc recipe: %w", err)
		}
		if f == "debian/changelog" {
			b, _, _ = bytes.Cut(b, []byte("\n"))
		}
		parts = append(parts, string(b))
	}
	stampDir := filepath.Join(g.root, "stamp-dir")
	err := configureOnce(ctx, g.root, filepath.Join(stampDir, "ulp-configured"), stampKey(parts...), func(ctx context.Context) error {
		if err := os.RemoveAll(g.BuildDir()); err != nil {
			return fmt.Errorf("glibc recipe: %w", err)
		}
		if err := os.MkdirAll(stampDir, 0o755); err != nil {
			return fmt.Errorf("glibc recipe: %w", err)
		}
		for _, s := range []string{"configure_" + glibcPass, "mkbuilddir_" + glibcPass, "config_sub_guess"} {
			os.Remove(filepath.Join(stampDir, s))
		}
		// Debian's patch step first (dpkg-source applied the series;
		// this applies an architecture's own, if any), then the stamp of
		// dh_update_autotools_config (debhelper), which only refreshes
		// config.sub and config.guess, newer than it.
		if _, err := runTool(ctx, g.root, toolEnv(), "make", "-f", "debian/rules", filepath.Join(stampDir, "patch")); err != nil {
			return fmt.Errorf("glibc recipe: debian/rules patch step: %w", err)
		}
		if err := os.WriteFile(filepath.Join(stampDir, "config_sub_guess"), nil, 0o644); err != nil {
			return fmt.Errorf("glibc recipe: %w", err)
		}
		if _, err := runTool(ctx, g.root, toolEnv(), "make", "-f", "debian/rules", filepath.Join(stampDir, "configure_"+glibcPass)); err != nil {
			return fmt.Errorf("glibc recipe: configure (debian/rules; gawk, bison, gperf, libselinux1-dev, libaudit-dev, libcap-dev installed?): %w", err)
		}
		return nil
	})
	if err == nil {
		g.mu.Lock()
		g.configured = true
		g.mu.Unlock()
	}
	return err
}

// Command implements Recipe: glibc's make, in the file's folder with the
// libc pass's objdir, builds SUBDIR/NAME.os (and the headers it needs),
// then prints its compiler command for the file.
func (g *Glibc) Command(ctx context.Context, file string) (Command, error) {
	if err := checkTreeFile(file); err != nil {
		return Command{}, fmt.Errorf("glibc recipe: %w", err)
	}
	sub, name := path.Split(file)
	sub = strings.TrimSuffix(sub, "/")
	if sub == "" || strings.Contains(sub, "/") || !strings.HasSuffix(name, ".c") {
		return Command{}, fmt.Errorf("glibc recipe: %s: only C files of glibc's top-level folders are supported (sysdeps/ files are compiled from other folders)", file)
	}
	if _, err := os.Stat(filepath.Join(g.root, sub, "Makefile")); err != nil {
		return Command{}, fmt.Errorf("glibc recipe: %s: its folder has no Makefile: %w", file, err)
	}
	if err := g.Configure(ctx); err != nil {
		return Command{}, err
	}
	objdir := g.BuildDir()
	obj := filepath.Join(objdir, sub, strings.TrimSuffix(name, ".c")+".os")
	dir := filepath.Join(g.root, sub)
	env := toolEnv()
	if _, err := runTool(ctx, dir, env, "make", "objdir="+objdir, obj); err != nil {
		return Command{}, fmt.Errorf("glibc recipe: %s is not built into libc.so.6 by glibc's make: %w", file, err)
	}
	out, err := runTool(ctx, dir, env, "make", "-n", "-W", name, "objdir="+objdir, obj)
	if err != nil {
		return Command{}, fmt.Errorf("glibc recipe: %w", err)
	}
	argv, err := compileLine(out, obj)
	if err != nil {
		return Command{}, fmt.Errorf("glibc recipe: %w", err)
	}
	return Command{Dir: dir, Args: argv}, nil
}
