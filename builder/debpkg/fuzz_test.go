package debpkg

import (
	"strings"
	"testing"
)

// FuzzCheck: whatever the checks accept is one line of printable ASCII
// without quotes or shell syntax (the maintainer: without control
// characters), so that it is safe in a control field and a script.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{"ulp-livepatch-openssl-3.0.17-1-deb12u2", "1:3.0.17-1~deb12u2", "Jane <j@x.org>", "a\nb", "1.0-1'"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		const unsafe = " \t\n\r\"'`$\\;&|<>(){}*?[]#!=,/"
		if CheckName(s) == nil && (strings.ContainsAny(s, unsafe+":~_") || len(s) < 2) {
			t.Errorf("CheckName accepted %q", s)
		}
		if CheckVersion(s) == nil && (strings.ContainsAny(s, unsafe+"_") || s == "" || s[0] < '0' || s[0] > '9') {
			t.Errorf("CheckVersion accepted %q", s)
		}
		if checkFile("file", s) == nil && (strings.ContainsAny(s, unsafe+":~") || strings.HasPrefix(s, ".") || s == "") {
			t.Errorf("checkFile accepted %q", s)
		}
		if CheckMaintainer(s) == nil && strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Errorf("CheckMaintainer accepted %q", s)
		}
		for _, r := range s {
			if r >= 0x80 && (CheckName(s) == nil || CheckVersion(s) == nil || checkFile("file", s) == nil) {
				t.Errorf("accepted non-ASCII %q", s)
				break
			}
		}
	})
}
