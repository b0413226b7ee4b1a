package debpkg

import (
	"os/exec"
	"strings"
	"testing"
)

// dpkgAccepts reports whether dpkg --validate-WHAT accepts s: what the
// checks accept, dpkg must accept too (they are stricter than dpkg).
func dpkgAccepts(t *testing.T, what, s string) bool {
	t.Helper()
	err := exec.Command("dpkg", "--validate-"+what, s).Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("dpkg --validate-%s: %v", what, err)
	}
	return err == nil
}

func TestCheckName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"ulp-livepatch-openssl-3.0.17-1-deb12u2", true},
		{"libstdc++6", true},
		{"0ad", true},
		{"a", false}, // at least two characters
		{"-lead", false},
		{".lead", false},
		{"Upper", false},
		{"under_score", false},
		{"tilde~", false},
		{"colon:amd64", false},
		{"sp ace", false},
		{"new\nline", false},
		{"quote'", false},
		{"$(id)", false},
		{"", false},
		{strings.Repeat("a", MaxName), true},
		{strings.Repeat("a", MaxName+1), false},
	} {
		if err := CheckName(tc.name); (err == nil) != tc.ok {
			t.Errorf("CheckName(%q) = %v, want ok %v", tc.name, err, tc.ok)
		}
		if tc.ok && !dpkgAccepts(t, "pkgname", tc.name) {
			t.Errorf("dpkg refuses package name %q", tc.name)
		}
	}
}

func TestCheckVersion(t *testing.T) {
	for _, tc := range []struct {
		v  string
		ok bool
	}{
		{"1", true},
		{"3.0.17-1~deb12u2", true},
		{"2.36-9+deb12u14", true},
		{"1:2.3-4", true},
		{"1.0-rc1-2", true}, // hyphens in upstream when there is a revision
		{"1.0~rc1", true},
		{"0", true},
		{"a1", false},      // upstream starts with a digit
		{"1.0-", false},    // empty revision
		{"1.0-a_b", false}, // _ in revision
		{"1.0-1:2", false}, // colon in revision
		{"x:1.0", false},   // epoch not a number
		{":1.0", false},
		{"1:", false},
		{"1.0 2", false},
		{"1.0\n", false},
		{"1.0'", false},
		{"", false},
		{"-1", false},
		{"1.0-1~", true},
		{strings.Repeat("1", MaxName+1), false},
	} {
		if err := CheckVersion(tc.v); (err == nil) != tc.ok {
			t.Errorf("CheckVersion(%q) = %v, want ok %v", tc.v, err, tc.ok)
		}
		if tc.ok && !dpkgAccepts(t, "version", tc.v) {
			t.Errorf("dpkg refuses version %q", tc.v)
		}
	}
}

func TestCheckMaintainer(t *testing.T) {
	for _, tc := range []struct {
		m  string
		ok bool
	}{
		{"Jane Doe <jane@example.org>", true},
		{"ulp deb <root@localhost>", true},
		{"Jane Doe", false},
		{"<jane@example.org>", false},
		{"Jane <jane>", false},
		{"Jane\nDepends: evil <a@b>", false},
		{"Jane <a@b>\n", false},
		{"Jane <a@b> <c@d>", false},
		{"Jane <a\x01@b>", false}, // found by FuzzCheck
		{"Jane\x7f <a@b>", false},
	} {
		if err := CheckMaintainer(tc.m); (err == nil) != tc.ok {
			t.Errorf("CheckMaintainer(%q) = %v, want ok %v", tc.m, err, tc.ok)
		}
	}
}

func TestParseDependency(t *testing.T) {
	for _, tc := range []struct {
		in, pkg, version string
		ok               bool
	}{
		{"libssl3=3.0.17-1~deb12u2", "libssl3", "3.0.17-1~deb12u2", true},
		{"libc6:amd64=2.36-9+deb12u7", "libc6", "2.36-9+deb12u7", true},
		{"libc6=1:2.0", "libc6", "1:2.0", true},
		{"libssl3", "", "", false},
		{"libssl3=", "", "", false},
		{"LibSSL=1", "", "", false},
		{"libssl3=1 (>= 2)", "", "", false},
	} {
		pkg, version, err := ParseDependency(tc.in)
		if (err == nil) != tc.ok || pkg != tc.pkg || version != tc.version {
			t.Errorf("ParseDependency(%q) = %q, %q, %v; want %q, %q, ok %v", tc.in, pkg, version, err, tc.pkg, tc.version, tc.ok)
		}
	}
}

func TestNameComponent(t *testing.T) {
	for in, want := range map[string]string{
		"3.0.17-1~deb12u2": "3.0.17-1-deb12u2",
		"1:2.36-9+deb12u7": "1-2.36-9+deb12u7",
		"ABC_d":            "abc-d",
	} {
		got := nameComponent(in)
		if got != want {
			t.Errorf("nameComponent(%q) = %q, want %q", in, got, want)
		}
		if err := CheckName("x" + got); err != nil {
			t.Errorf("nameComponent(%q): %v", in, err)
		}
	}
}
