package recipe

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// opensslBuildDir is the folder debian/rules configures the shared
// libraries in (`mkdir build_shared; cd build_shared; ../Configure shared
// ...`). Using the same name keeps every path the compiler sees, __FILE__
// strings included, as in Debian's build.
const opensslBuildDir = "build_shared"

// opensslRecipeVersion changes whenever this recipe configures trees
// differently, so that older stamps are not trusted.
const opensslRecipeVersion = "openssl-recipe-1"

// OpenSSL is the recipe of an OpenSSL source tree unpacked by
// `apt-get source openssl` (Debian's patches applied). Its first Command
// configures the tree as debian/rules does for the shared libraries: the
// Configure options and target of debian/rules, the flags of
// dpkg-buildflags with the rules' DEB_BUILD_MAINT_OPTIONS, the folder
// build_shared; then `make build_generated`. The step runs once: a stamp in
// build_shared keyed by the tree's version, the options and the flags makes
// later runs (and other processes) reuse it. Configuring runs the tree's own
// debian/rules (through make) and Perl scripts, as building the package
// does: give it only trees you would build.
type OpenSSL struct {
	root string
	lib  string // the shared library's file name: libcrypto.so.3, libssl.so.3

	mu         sync.Mutex
	configured bool              // Configure succeeded in this process
	objects    map[string]string // source file (relative to root) -> object (relative to the build folder)
}

func init() {
	register("openssl", IsOpenSSL, func(root, target string) (Recipe, error) { return NewOpenSSL(root, target) })
}

// IsOpenSSL reports whether dir looks like an OpenSSL source tree.
func IsOpenSSL(dir string) bool {
	for _, f := range []string{"Configure", "VERSION.dat", "include/openssl/opensslv.h.in"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return false
		}
	}
	return true
}

// NewOpenSSL returns the recipe of the OpenSSL tree root for the shared
// library lib (a path or file name: libcrypto.so.3 or libssl.so.3). The
// tree must carry Debian's packaging (debian/rules).
func NewOpenSSL(root, lib string) (*OpenSSL, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("openssl recipe: %w", err)
	}
	if !IsOpenSSL(root) {
		return nil, fmt.Errorf("openssl recipe: %s is not an OpenSSL source tree (no Configure, VERSION.dat, include/openssl/opensslv.h.in)", root)
	}
	if _, err := os.Stat(filepath.Join(root, "debian", "rules")); err != nil {
		return nil, fmt.Errorf("openssl recipe: %s has no debian/rules: the recipe configures a tree as Debian's packaging does (apt-get source openssl=VERSION): %w", root, err)
	}
	name := filepath.Base(lib)
	if !strings.HasPrefix(name, "lib") || !strings.Contains(name, ".so") {
		return nil, fmt.Errorf("openssl recipe: %q is not a shared library name (libcrypto.so.3, libssl.so.3)", name)
	}
	return &OpenSSL{root: root, lib: name}, nil
}

// Name implements Recipe.
func (o *OpenSSL) Name() string { return "openssl" }

// Root implements Recipe.
func (o *OpenSSL) Root() string { return o.root }

// BuildDir is the folder the tree is configured in (Root/build_shared).
func (o *OpenSSL) BuildDir() string { return filepath.Join(o.root, opensslBuildDir) }

// Command implements Recipe: the compiler command of the object file that
// the library's link takes file from (crypto/asn1/libcrypto-shlib-a_mbstr.o
// for crypto/asn1/a_mbstr.c in libcrypto.so.3; providers' files through the
// static libraries libcrypto.so.3 is linked with), as `make -n` prints it in
// the build folder. Dir is the build folder; the source is named relative to
// it (../crypto/asn1/a_mbstr.c), as in Debian's build.
func (o *OpenSSL) Command(ctx context.Context, file string) (Command, error) {
	if err := checkTreeFile(file); err != nil {
		return Command{}, fmt.Errorf("openssl recipe: %w", err)
	}
	if err := o.Configure(ctx); err != nil {
		return Command{}, err
	}
	objects, err := o.linkObjects()
	if err != nil {
		return Command{}, err
	}
	obj, ok := objects[file]
	if !ok {
		return Command{}, fmt.Errorf("openssl recipe: %s is not compiled into %s (no object of its link is made from it)", file, o.lib)
	}
	src := "../" + file
	out, err := runTool(ctx, o.BuildDir(), toolEnv(), "make", "-n", "-W", src, obj)
	if err != nil {
		return Command{}, fmt.Errorf("openssl recipe: %w", err)
	}
	argv, err := compileLine(out, obj)
	if err != nil {
		return Command{}, fmt.Errorf("openssl recipe: %w", err)
	}
	return Command{Dir: o.BuildDir(), Args: argv}, nil
}

// checkTreeFile accepts a clean relative path inside a tree, as a -p1 patch
// names a file.
func checkTreeFile(file string) error {
	if file == "" || path.IsAbs(file) || path.Clean(file) != file || file == ".." || strings.HasPrefix(file, "../") {
		return fmt.Errorf("%q is not a clean path relative to the tree", file)
	}
	return nil
}

// debianConfig is what debian/rules says about configuring the tree.
type debianConfig struct {
	confArgs     []string // CONFARGS
	arch         string   // DEB_HOST_ARCH
	maintOptions string   // DEB_BUILD_MAINT_OPTIONS
	flags        []string // NAME=VALUE of dpkg-buildflags
	epoch        string   // SOURCE_DATE_EPOCH of debian/changelog
}

// readDebianConfig evaluates debian/rules with make to learn its Configure
// options, and asks dpkg-buildflags for the flags dh would export.
func (o *OpenSSL) readDebianConfig(ctx context.Context) (debianConfig, error) {
	var c debianConfig
	rules, err := os.ReadFile(filepath.Join(o.root, "debian", "rules"))
	if err != nil {
		return c, fmt.Errorf("openssl recipe: %w", err)
	}
	if !bytes.Contains(rules, []byte("mkdir "+opensslBuildDir)) || !bytes.Contains(rules, []byte("../Configure shared $(CONFARGS) debian-$(DEB_HOST_ARCH)")) {
		return c, fmt.Errorf("openssl recipe: debian/rules does not configure %s with `../Configure shared $(CONFARGS) debian-$(DEB_HOST_ARCH)`: another packaging than this recipe knows", opensslBuildDir)
	}
	// The rule's recipe is expanded after debian/rules is read, so it sees
	// the rules' own values.
	out, err := runTool(ctx, o.root, toolEnv(), "make", "-s", "--no-print-directory", "-f", "debian/rules",
		"--eval", "ulp-print-config: ; @: $(info ulp:CONFARGS=$(CONFARGS))$(info ulp:DEB_HOST_ARCH=$(DEB_HOST_ARCH))"+
			"$(info ulp:DEB_BUILD_MAINT_OPTIONS=$(DEB_BUILD_MAINT_OPTIONS))",
		"ulp-print-config")
	if err != nil {
		return c, fmt.Errorf("openssl recipe: evaluate debian/rules (is dpkg-dev installed?): %w", err)
	}
	vars := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if kv, ok := strings.CutPrefix(sc.Text(), "ulp:"); ok {
			k, v, _ := strings.Cut(kv, "=")
			vars[k] = strings.TrimSpace(v)
		}
	}
	c.confArgs = strings.Fields(vars["CONFARGS"])
	c.arch = vars["DEB_HOST_ARCH"]
	c.maintOptions = vars["DEB_BUILD_MAINT_OPTIONS"]
	if len(c.confArgs) == 0 || c.arch == "" {
		return c, fmt.Errorf("openssl recipe: debian/rules gives no CONFARGS or DEB_HOST_ARCH")
	}
	for _, a := range append(c.confArgs, c.arch) {
		if strings.ContainsAny(a, "\"'`$\\;|&<>") {
			return c, fmt.Errorf("openssl recipe: unexpected Configure argument %q in debian/rules", a)
		}
	}
	env := toolEnv("DEB_BUILD_MAINT_OPTIONS=" + c.maintOptions)
	for _, name := range []string{"CFLAGS", "CPPFLAGS", "CXXFLAGS", "LDFLAGS"} {
		v, err := runTool(ctx, o.root, env, "dpkg-buildflags", "--get", name)
		if err != nil {
			return c, fmt.Errorf("openssl recipe: %w", err)
		}
		c.flags = append(c.flags, name+"="+strings.TrimSpace(string(v)))
	}
	ts, err := runTool(ctx, o.root, toolEnv(), "dpkg-parsechangelog", "-STimestamp")
	if err != nil {
		return c, fmt.Errorf("openssl recipe: %w", err)
	}
	c.epoch = strings.TrimSpace(string(ts))
	return c, nil
}

// Configure configures the tree in build_shared and generates its headers
// unless a stamp says this was done with the same inputs. Command calls it;
// it is exported for tools that want the step's cost up front.
func (o *OpenSSL) Configure(ctx context.Context) error {
	o.mu.Lock()
	done := o.configured
	o.mu.Unlock()
	if done {
		return nil
	}
	key, err := o.stampKey()
	if err != nil {
		return err
	}
	build := o.BuildDir()
	err = configureOnce(ctx, o.root, filepath.Join(build, ".ulp-configured"), key, func(ctx context.Context) error {
		c, err := o.readDebianConfig(ctx)
		if err != nil {
			return err
		}
		if err := os.RemoveAll(build); err != nil {
			return fmt.Errorf("openssl recipe: %w", err)
		}
		if err := os.Mkdir(build, 0o755); err != nil {
			return fmt.Errorf("openssl recipe: %w", err)
		}
		env := toolEnv(append([]string{"HASHBANGPERL=/usr/bin/perl", "SOURCE_DATE_EPOCH=" + c.epoch}, c.flags...)...)
		args := append(append([]string{"../Configure", "shared"}, c.confArgs...), "debian-"+c.arch)
		if _, err := runTool(ctx, build, env, args...); err != nil {
			return fmt.Errorf("openssl recipe: configure: %w", err)
		}
		if _, err := runTool(ctx, build, env, "make", "build_generated"); err != nil {
			return fmt.Errorf("openssl recipe: generate headers: %w", err)
		}
		return nil
	})
	if err == nil {
		o.mu.Lock()
		o.configured = true
		o.objects = nil // the Makefile may be new
		o.mu.Unlock()
	}
	return err
}

// dpkgFlagsInputs are the files dpkg-buildflags' answer depends on, besides
// DEB_BUILD_MAINT_OPTIONS of debian/rules: the tool, Debian's vendor rules
// and the administrator's overrides.
var dpkgFlagsInputs = []string{"/usr/bin/dpkg-buildflags", "/usr/share/perl5/Dpkg/Vendor/Debian.pm", "/usr/share/perl5/Dpkg/BuildFlags.pm", "/etc/dpkg/buildflags.conf"}

// stampKey digests what the configure step depends on without running any
// tool (a configured tree then costs nothing to reuse): the tree's place
// (dpkg-buildflags maps it to "." in -ffile-prefix-map), VERSION.dat,
// debian/rules (Configure options, DEB_BUILD_MAINT_OPTIONS), the first line
// of debian/changelog (the package version; SOURCE_DATE_EPOCH comes from
// that entry), and the files of dpkgFlagsInputs.
func (o *OpenSSL) stampKey() (string, error) {
	parts := []string{opensslRecipeVersion, o.root}
	for _, f := range []string{"VERSION.dat", "debian/rules", "debian/changelog"} {
		b, err := os.ReadFile(filepath.Join(o.root, f))
		if err != nil {
			return "", fmt.Errorf("openssl recipe: %w", err)
		}
		if f == "debian/changelog" {
			b, _, _ = bytes.Cut(b, []byte("\n"))
		}
		parts = append(parts, string(b))
	}
	for _, f := range dpkgFlagsInputs {
		if b, err := os.ReadFile(f); err == nil {
			parts = append(parts, f, string(b))
		}
	}
	return stampKey(parts...), nil
}

// linkObjects maps each source file of the tree compiled into the library
// to its object, from the build folder's Makefile: the library's rule lists
// its objects and static libraries, a static library's rule its objects, an
// object's rule its source first.
func (o *OpenSSL) linkObjects() (map[string]string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.objects != nil {
		return o.objects, nil
	}
	mk, err := os.ReadFile(filepath.Join(o.BuildDir(), "Makefile"))
	if err != nil {
		return nil, fmt.Errorf("openssl recipe: %w", err)
	}
	rules := makeRules(mk)
	if _, ok := rules[o.lib]; !ok {
		var libs []string
		for t := range rules {
			if strings.Contains(t, ".so.") && !strings.Contains(t, "/") {
				libs = append(libs, t)
			}
		}
		sort.Strings(libs)
		return nil, fmt.Errorf("openssl recipe: the Makefile links no %s (it links %s)", o.lib, strings.Join(libs, ", "))
	}
	objects := map[string]string{}
	seen := map[string]bool{}
	var walk func(target string)
	walk = func(target string) {
		if seen[target] {
			return
		}
		seen[target] = true
		for _, p := range rules[target] {
			switch {
			case strings.HasSuffix(p, ".a"):
				walk(p)
			case strings.HasSuffix(p, ".o"):
				if deps := rules[p]; len(deps) > 0 {
					if src, ok := strings.CutPrefix(deps[0], "../"); ok && strings.HasSuffix(src, ".c") {
						if _, dup := objects[src]; !dup {
							objects[src] = p
						}
					}
				}
			}
		}
	}
	walk(o.lib)
	if len(objects) == 0 {
		return nil, errors.New("openssl recipe: the Makefile's rule of " + o.lib + " names no object made from a C file")
	}
	o.objects = objects
	return objects, nil
}

// makeRules reads the explicit rules "target: prerequisites" of a
// generated Makefile (continuation lines joined; recipes, variable
// assignments and comments skipped).
func makeRules(mk []byte) map[string][]string {
	text := strings.ReplaceAll(string(mk), "\\\n", " ")
	rules := map[string][]string{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || line[0] == '\t' || line[0] == '#' {
			continue
		}
		target, deps, ok := strings.Cut(line, ":")
		if !ok || strings.ContainsAny(target, "=$%") || strings.HasPrefix(deps, "=") {
			continue
		}
		target = strings.TrimSpace(target)
		if target == "" || strings.ContainsAny(target, " \t") {
			continue
		}
		rules[target] = append(rules[target], strings.Fields(deps)...)
	}
	return rules
}
