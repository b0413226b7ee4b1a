package debpkg_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"ulp/internal/testenv"
	"ulp/livepatch/trigger/triggertest"
)

// TestAptUpgrade: when the library a livepatch package was built for gets
// a new version, apt-get upgrade installs it and keeps the livepatch
// package (the processes still running the old library keep their fix),
// as it would not with an exact pin. apt runs in simulation (-s) on a
// private status file and a private file: repository, so nothing on the
// machine changes.
func TestAptUpgrade(t *testing.T) {
	testenv.Require(t, testenv.Build, testenv.CC)
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Fatalf("apt-get: %v", err) // Debian: every test machine has apt
	}
	fx := triggertest.Build(t)
	dir := t.TempDir()
	deb := filepath.Join(dir, "lp.deb")
	ulpDeb(t, "--depends-on", "ulp-test-lib=1.0-1", "--name", "ulp-livepatch-lib", "-o", deb, fx.LP["lp200"])
	// The livepatch package's stanza in the status file is its own
	// control file: dpkg-deb -f prints every field.
	control := run(t, nil, "dpkg-deb", "-f", deb)
	stanza := func(pkg, version string) string {
		return "Package: " + pkg + "\nStatus: install ok installed\nPriority: optional\nSection: libs\n" +
			"Architecture: amd64\nVersion: " + version + "\nMaintainer: t <t@localhost>\nDescription: test\n\n"
	}
	lp := strings.Replace(strings.TrimSpace(control), "\nVersion:", "\nStatus: install ok installed\nVersion:", 1) + "\n\n"
	status := filepath.Join(dir, "status")
	if err := os.WriteFile(status, []byte(stanza("ulp-test-lib", "1.0-1")+stanza("ulp", "0.1.0")+lp), 0o644); err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(dir, "repo")
	for _, d := range []string{repo, filepath.Join(dir, "lists/partial"), filepath.Join(dir, "cache/archives/partial")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	packages := "Package: ulp-test-lib\nVersion: 1.0-2\nArchitecture: amd64\nMaintainer: t <t@localhost>\n" +
		"Filename: ./ulp-test-lib_1.0-2_amd64.deb\nSize: 1000\nDescription: test\n\n"
	if err := os.WriteFile(filepath.Join(repo, "Packages"), []byte(packages), 0o644); err != nil {
		t.Fatal(err)
	}
	sources := filepath.Join(dir, "sources.list")
	if err := os.WriteFile(sources, []byte("deb [trusted=yes] file:"+repo+" ./\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := []string{
		"-o", "Dir::State::status=" + status, "-o", "Dir::Etc::SourceList=" + sources, "-o", "Dir::Etc::SourceParts=/dev/null",
		"-o", "Dir::State::Lists=" + filepath.Join(dir, "lists"), "-o", "Dir::Cache=" + filepath.Join(dir, "cache"),
		"-o", "Dir::State::extended_states=" + filepath.Join(dir, "extended_states"), "-o", "Debug::NoLocking=1",
	}
	run(t, nil, "apt-get", append(opts, "-qq", "update")...)
	out := run(t, nil, "apt-get", append(opts, "-s", "upgrade")...)
	if !strings.Contains(out, "Inst ulp-test-lib [1.0-1] (1.0-2") || strings.Contains(out, "Remv") || strings.Contains(out, "kept back") {
		t.Errorf("apt-get -s upgrade of the library with %q installed:\n%s\nwant the library upgraded and nothing removed", "Depends: "+strings.TrimSpace(run(t, nil, "dpkg-deb", "-f", deb, "Depends")), out)
	}
}
