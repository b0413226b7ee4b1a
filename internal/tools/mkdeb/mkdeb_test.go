package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"ulp/internal/testenv"
)

// installed is what `make install PREFIX=/usr` writes besides man pages.
var installed = []string{
	"usr/bin/ulp",
	"usr/bin/ulpfleet",
	"usr/lib/x86_64-linux-gnu/libpulp.so.0",
	"usr/share/bash-completion/completions/ulp",
	"usr/share/bash-completion/completions/ulpfleet",
	"usr/share/fish/vendor_completions.d/ulp.fish",
	"usr/share/fish/vendor_completions.d/ulpfleet.fish",
	"usr/share/zsh/vendor-completions/_ulp",
	"usr/share/zsh/vendor-completions/_ulpfleet",
}

// makeTarget runs a target of the Makefile on the artifacts already built
// (testenv.Build): -o keeps make from rebuilding them.
func makeTarget(t *testing.T, args ...string) {
	t.Helper()
	b := testenv.BuildDir()
	flags := []string{"--no-print-directory", "-C", testenv.ModuleRoot(), "BUILD=" + b}
	for _, f := range []string{"ulp", "ulpfleet", "libpulp.so.0"} {
		flags = append(flags, "-o", filepath.Join(b, f))
	}
	cmd := exec.CommandContext(t.Context(), "make", append(flags, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// files lists the regular files under root, relative, sorted.
func files(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// commands returns the man pages expected for bin's commands, from its
// --help: BIN.1.gz and BIN-CMD.1.gz for each listed command but help.
func commands(t *testing.T, bin string) []string {
	t.Helper()
	out, err := exec.Command(bin, "--help").Output()
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Base(bin)
	pages := []string{name + ".1.gz"}
	in := false
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "Available Commands:":
			in = true
		case !strings.HasPrefix(line, "  "):
			in = false
		case in:
			if cmd := strings.Fields(line)[0]; cmd != "help" {
				pages = append(pages, name+"-"+cmd+".1.gz")
			}
		}
	}
	return pages
}

// TestInstall runs `make install` and `make uninstall` into a DESTDIR and
// checks the file list, the modes, and that uninstall leaves no file.
func TestInstall(t *testing.T) {
	testenv.Require(t, testenv.Build, testenv.CC)
	dest := t.TempDir()
	makeTarget(t, "install", "DESTDIR="+dest, "PREFIX=/usr")
	got := files(t, dest)
	for _, f := range installed {
		if !slices.Contains(got, f) {
			t.Errorf("install: %s missing", f)
		}
	}
	for _, bin := range []string{"ulp", "ulpfleet"} {
		for _, page := range commands(t, testenv.Artifact(t, bin)) {
			if !slices.Contains(got, "usr/share/man/man1/"+page) {
				t.Errorf("install: man page %s missing", page)
			}
		}
	}
	for _, doc := range []string{"README.md", "operating.md", "cli.md", "json.md"} {
		if !slices.Contains(got, "usr/share/doc/ulp/"+doc) {
			t.Errorf("install: doc %s missing", doc)
		}
	}
	for _, f := range got {
		known := slices.Contains(installed, f) || strings.HasPrefix(f, "usr/share/doc/ulp/") ||
			strings.HasPrefix(f, "usr/share/man/man1/ulp")
		if !known {
			t.Errorf("install: unexpected file %s", f)
		}
	}
	for f, mode := range map[string]os.FileMode{"usr/bin/ulp": 0o755, "usr/lib/x86_64-linux-gnu/libpulp.so.0": 0o644} {
		if fi, err := os.Stat(filepath.Join(dest, f)); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v, %v; want mode %v", f, fi.Mode(), err, mode)
		}
	}
	// The installed agent runs and its completion script names it.
	out, err := exec.Command(filepath.Join(dest, "usr/bin/ulp"), "preload", "--help").Output()
	if err != nil || !strings.Contains(string(out), "/etc/ld.so.preload") {
		t.Errorf("installed ulp preload --help: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(dest, "usr/share/bash-completion/completions/ulp")); !strings.Contains(string(b), "__start_ulp") {
		t.Errorf("bash completion of ulp does not define __start_ulp")
	}
	makeTarget(t, "uninstall", "DESTDIR="+dest, "PREFIX=/usr")
	if left := files(t, dest); len(left) != 0 {
		t.Errorf("uninstall left %q", left)
	}
}

// TestDeb builds the package with `make deb` and checks with dpkg-deb that
// it holds the files of `make install`, its control fields, the ldconfig
// trigger and the prerm script.
func TestDeb(t *testing.T) {
	testenv.Require(t, testenv.Build, testenv.CC)
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Fatalf("dpkg-deb: %v", err)
	}
	dir := t.TempDir()
	deb := filepath.Join(dir, "ulp.deb")
	root := filepath.Join(dir, "root")
	makeTarget(t, "deb", "DEB_ROOT="+root, "DEB_OUT="+deb, "VERSION=1.2.3")
	want := files(t, root)
	out, err := exec.Command("dpkg-deb", "-c", deb).Output()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) < 6 || !strings.HasPrefix(f[0], "-") {
			continue // directories
		}
		got = append(got, strings.TrimPrefix(f[5], "./"))
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("dpkg-deb -c lists\n%q\nwant the installed tree\n%q", got, want)
	}
	for _, f := range installed {
		if !slices.Contains(got, f) {
			t.Errorf("deb: %s missing", f)
		}
	}
	for field, value := range map[string]string{"Package": "ulp", "Version": "1.2.3", "Architecture": "amd64", "Depends": "libc6"} {
		out, err := exec.Command("dpkg-deb", "-f", deb, field).Output()
		if err != nil || strings.TrimSpace(string(out)) != value {
			t.Errorf("dpkg-deb -f %s = %q, %v; want %q", field, out, err, value)
		}
	}
	ctl := filepath.Join(dir, "control")
	if out, err := exec.Command("dpkg-deb", "-e", deb, ctl).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -e: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(ctl, "triggers")); strings.TrimSpace(string(b)) != "activate-noawait ldconfig" {
		t.Errorf("triggers = %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(ctl, "prerm")); !strings.Contains(string(b), "ulp preload disable") {
		t.Errorf("prerm = %q", b)
	}
}
