package debpkg_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"ulp/builder/debpkg"
)

// TestWriteDeb writes a package with WriteDeb and reads it with the real
// dpkg-deb: the control file (--info), the members' names, modes, owners,
// folders and time stamps (--contents), the bytes and md5sums of the files
// extracted (-x) and the control members (-e).
func TestWriteDeb(t *testing.T) {
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Fatalf("dpkg-deb: %v", err) // Debian: every test machine has dpkg
	}
	dir := t.TempDir()
	deb := filepath.Join(dir, "t.deb")
	c := debpkg.Control{
		Fields:      [][2]string{{"Package", "ulp-test-write"}, {"Version", "1.0-1"}, {"Architecture", "amd64"}, {"Homepage", ""}, {"Maintainer", "t <t@localhost>"}},
		Description: "a test package\nfirst paragraph\n\nsecond paragraph\n",
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 200) // 3200 bytes: Installed-Size 4 with the rest
	data := []debpkg.File{
		{Name: "/usr/lib/ulp-test/b.so", Mode: 0o644, Data: big},
		{Name: "/usr/bin/ulp-test", Mode: 0o755, Data: []byte("#!/bin/sh\necho test\n")},
		{Name: "/usr/lib/ulp-test/a.so", Mode: 0o600, Data: []byte("a")},
	}
	ctl := []debpkg.File{{Name: "postinst", Mode: 0o755, Data: []byte("#!/bin/sh\nexit 0\n")}}
	mtime := time.Unix(1700000000, 0)
	f, err := os.Create(deb)
	if err != nil {
		t.Fatal(err)
	}
	if err := debpkg.WriteDeb(f, c, ctl, data, mtime); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if len(c.Fields) != 5 {
		t.Errorf("WriteDeb changed the caller's fields: %q", c.Fields)
	}

	wantCtl := "Package: ulp-test-write\nVersion: 1.0-1\nArchitecture: amd64\nMaintainer: t <t@localhost>\n" +
		"Installed-Size: 4\nDescription: a test package\n first paragraph\n .\n second paragraph\n"
	if got := run(t, nil, "dpkg-deb", "--field", deb); got != wantCtl {
		t.Errorf("dpkg-deb --field:\n%s\nwant\n%s", got, wantCtl)
	}
	if info := run(t, nil, "dpkg-deb", "--info", deb); !strings.Contains(info, "new Debian package, version 2.0.") ||
		!regexp.MustCompile(`(?m)^ +\d+ bytes, +2 lines +\* +postinst +#!/bin/sh$`).MatchString(info) {
		t.Errorf("dpkg-deb --info:\n%s", info)
	}

	var got []string
	for line := range strings.Lines(run(t, []string{"TZ=UTC"}, "dpkg-deb", "--contents", deb)) {
		f := strings.Fields(line)
		got = append(got, strings.Join([]string{f[0], f[1], f[3], f[4], f[5]}, " "))
	}
	const stamp = " 2023-11-14 22:13 "
	want := []string{
		"drwxr-xr-x root/root" + stamp + "./",
		"drwxr-xr-x root/root" + stamp + "./usr/",
		"drwxr-xr-x root/root" + stamp + "./usr/bin/",
		"-rwxr-xr-x root/root" + stamp + "./usr/bin/ulp-test",
		"drwxr-xr-x root/root" + stamp + "./usr/lib/",
		"drwxr-xr-x root/root" + stamp + "./usr/lib/ulp-test/",
		"-rw------- root/root" + stamp + "./usr/lib/ulp-test/a.so",
		"-rw-r--r-- root/root" + stamp + "./usr/lib/ulp-test/b.so",
	}
	if !slices.Equal(got, want) {
		t.Errorf("dpkg-deb --contents:\n%q\nwant\n%q", got, want)
	}

	x := filepath.Join(dir, "x")
	run(t, nil, "dpkg-deb", "-x", deb, x)
	for _, f := range data {
		if b, err := os.ReadFile(filepath.Join(x, f.Name)); err != nil || !bytes.Equal(b, f.Data) {
			t.Errorf("extracted %s: %q, %v; want %q", f.Name, b, err, f.Data)
		}
	}
	e := filepath.Join(dir, "e")
	run(t, nil, "dpkg-deb", "-e", deb, e)
	cmd := exec.Command("md5sum", "--check", "--strict", filepath.Join(e, "md5sums"))
	cmd.Dir = x
	if out, err := cmd.CombinedOutput(); err != nil || strings.Count(string(out), ": OK\n") != len(data) {
		t.Errorf("md5sum --check of md5sums: %v\n%s", err, out)
	}
	if fi, err := os.Stat(filepath.Join(e, "postinst")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("postinst: %v, %v; want mode 0755", fi, err)
	}

	// The same inputs give the same bytes.
	var again bytes.Buffer
	reversed := slices.Clone(data)
	slices.Reverse(reversed)
	if err := debpkg.WriteDeb(&again, c, ctl, reversed, mtime); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(deb); !bytes.Equal(b, again.Bytes()) {
		t.Errorf("a second WriteDeb of the same files in another order wrote other bytes")
	}
}
