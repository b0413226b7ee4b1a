package testenv

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// Capabilities understood by Require.
const (
	Root   = "root"   // running as uid 0
	Ptrace = "ptrace" // may ptrace own children
	CC     = "cc"     // a C compiler on PATH
	SSHD   = "sshd"   // OpenSSH's sshd binary
	Build  = "build"  // the artifacts of `make` exist (build/ulp, build/libpulp.so.0)
	Nginx  = "nginx"  // Debian's nginx binary (make deps installs it)
	Sudo   = "sudo"   // sudo and useradd/userdel (make deps installs sudo)
	DebSrc = "debsrc" // apt-get source and download work: deb-src entries (make deb-src), dpkg-dev
	// Libpulp is SUSE's prebuilt libpulp 0.3.17 (see LibpulpDir): an
	// outside artifact no make step installs, so "all" does not require
	// it; ULP_TEST_REQUIRE=libpulp does.
	Libpulp = "libpulp"
)

// Required reports whether ULP_TEST_REQUIRE demands capability c.
func Required(c string) bool {
	for _, f := range strings.Split(os.Getenv("ULP_TEST_REQUIRE"), ",") {
		f = strings.TrimSpace(f)
		if f == c || f == "all" && c != Libpulp {
			return true
		}
	}
	return false
}

// Require skips t (or fails it, when the capability is required) unless
// every capability in caps is available.
func Require(t testing.TB, caps ...string) {
	t.Helper()
	for _, c := range caps {
		if why := missing(c); why != "" {
			if Required(c) {
				t.Fatalf("capability %q required by ULP_TEST_REQUIRE but missing: %s", c, why)
			}
			t.Skipf("skipping: capability %q missing: %s", c, why)
		}
	}
}

func missing(c string) string {
	switch c {
	case Root:
		if os.Geteuid() != 0 {
			return "not running as root"
		}
	case Ptrace:
		if runtime.GOOS != "linux" {
			return "not linux"
		}
		if b, err := os.ReadFile("/proc/sys/kernel/yama/ptrace_scope"); err == nil {
			if s := strings.TrimSpace(string(b)); s == "3" {
				return "yama ptrace_scope is 3"
			}
		}
	case CC:
		if _, err := exec.LookPath("cc"); err != nil {
			return "no cc on PATH"
		}
	case SSHD:
		if _, err := os.Stat("/usr/sbin/sshd"); err != nil {
			return "no /usr/sbin/sshd (apt-get install openssh-server)"
		}
	case Nginx:
		if _, err := os.Stat("/usr/sbin/nginx"); err != nil {
			return "no /usr/sbin/nginx (apt-get install nginx)"
		}
	case Sudo:
		for _, tool := range []string{"/usr/bin/sudo", "/usr/sbin/useradd", "/usr/sbin/userdel"} {
			if _, err := os.Stat(tool); err != nil {
				return "no " + tool + " (apt-get install sudo passwd)"
			}
		}
	case DebSrc:
		return debSrcOnce()
	case Libpulp:
		for _, f := range []string{"bin/ulp", "lib/libpulp.so.0.0.0"} {
			if _, err := os.Stat(filepath.Join(LibpulpDir(), f)); err != nil {
				return "no prebuilt libpulp 0.3.17 (set ULP_LIBPULP_DIR): " + err.Error()
			}
		}
	case Build:
		for _, f := range []string{"ulp", "libpulp.so.0"} {
			if _, err := os.Stat(filepath.Join(BuildDir(), f)); err != nil {
				return "run make first: " + err.Error()
			}
		}
	default:
		return "unknown capability"
	}
	return ""
}

// debSrcOnce checks once per process that apt knows source packages and
// that the tools of ulp build's Debian recipes are installed.
var debSrcOnce = sync.OnceValue(func() string {
	for _, tool := range []string{"apt-get", "dpkg-source", "dpkg-deb", "dpkg-buildflags", "dpkg-parsechangelog", "patch", "perl", "make"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "no " + tool + " on PATH (make deps installs dpkg-dev, patch)"
		}
	}
	out, err := exec.Command("apt-get", "indextargets", "--format", "$(IDENTIFIER)").Output()
	if err != nil {
		return "apt-get indextargets: " + err.Error()
	}
	for _, id := range strings.Fields(string(out)) {
		if id == "Sources" {
			return ""
		}
	}
	return "apt has no deb-src entries (run make deb-src as root)"
})

var rootOnce = sync.OnceValue(func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
})

// LibpulpDir returns the folder of SUSE's prebuilt libpulp 0.3.17 (bin/ulp,
// lib/libpulp.so.0.0.0): $ULP_LIBPULP_DIR when set, else
// ../shared/anchors/libpulp-0.3.17 from the module root, as the project's
// machines keep it.
func LibpulpDir() string {
	if d := os.Getenv("ULP_LIBPULP_DIR"); d != "" {
		return d
	}
	return filepath.Join(ModuleRoot(), "..", "shared", "anchors", "libpulp-0.3.17")
}

// ModuleRoot returns the repository's top folder.
func ModuleRoot() string { return rootOnce() }

// BuildDir returns the folder holding the artifacts of `make`: $ULP_BUILD_DIR
// when set, else build/ under the module root.
func BuildDir() string {
	if d := os.Getenv("ULP_BUILD_DIR"); d != "" {
		return d
	}
	return filepath.Join(ModuleRoot(), "build")
}

// Artifact returns the path of a file built by make (e.g. "ulp",
// "libpulp.so.0"), requiring the Build capability.
func Artifact(t testing.TB, name string) string {
	t.Helper()
	Require(t, Build)
	return filepath.Join(BuildDir(), name)
}

// CompileC compiles C sources with cc into out, failing t on error. args are
// passed to cc before the sources (e.g. "-shared", "-fPIC").
func CompileC(t testing.TB, out string, args []string, srcs ...string) {
	t.Helper()
	Require(t, CC)
	cmdArgs := append(append([]string{"-o", out}, args...), srcs...)
	cmd := exec.Command("cc", cmdArgs...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cc %s: %v\n%s", strings.Join(cmdArgs, " "), err, b)
	}
}

// StartPiped starts cmd with pipes to its stdin and from its stdout (its
// stderr goes to the test's unless set), failing t on error. When t ends,
// stdin is closed and the process is killed and reaped.
func StartPiped(t testing.TB, cmd *exec.Cmd) (stdin io.WriteCloser, stdout io.Reader) {
	t.Helper()
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	t.Cleanup(func() {
		in.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	return in, out
}

// AddSeedFiles adds the contents of every file matching pattern (e.g.
// "testdata/*.dsc") to the fuzz corpus of f, failing f when none matches.
func AddSeedFiles(f *testing.F, pattern string) {
	f.Helper()
	seeds, err := filepath.Glob(pattern)
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no fuzz seeds match %s: %v", pattern, err)
	}
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}
