package escape_test

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"ulp/internal/escape"
)

func TestText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"libcalc.so.1", "libcalc.so.1"},
		{"a b\tc", `a b\tc`},
		{"fake.so\nPID 1 (systemd): fake.so: SUCCESS", `fake.so\nPID 1 (systemd): fake.so: SUCCESS`},
		{"\x1b]0;owned\x07\x1b[2K\r", `\x1b]0;owned\a\x1b[2K\r`},
		{"back\\slash", `back\\slash`},
		{"\x7f\u0085", `\x7f\u0085`},
		{"évil\u202egnp.so", `évil\u202egnp.so`},
		{"bad\xffutf8", `bad\xffutf8`},
		{"", ""},
	}
	for _, tt := range tests {
		if got := escape.Text(tt.in); got != tt.want {
			t.Errorf("Text(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzText: whatever the input, the output is valid UTF-8 with only
// printable characters and spaces, and printable input is unchanged.
func FuzzText(f *testing.F) {
	for _, s := range []string{"plain", "a\nb", "\x1b[31m", "\xff\xfe", "\u202e", `\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := escape.Text(s)
		if !utf8.ValidString(out) {
			t.Fatalf("Text(%q) = %q: not UTF-8", s, out)
		}
		for _, r := range out {
			if r != ' ' && !unicode.IsPrint(r) {
				t.Fatalf("Text(%q) = %q holds %U", s, out, r)
			}
		}
		if utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return r == '\\' || r != ' ' && !unicode.IsPrint(r) }) && out != s {
			t.Fatalf("Text(%q) = %q changed printable text", s, out)
		}
	})
}

func TestLines(t *testing.T) {
	var b strings.Builder
	w := escape.LineWriter{W: &b}
	in := "ulp: invalid container: /tmp/x\x1b]0;t\a.so\nsecond\tline\n"
	if n, err := w.Write([]byte(in)); n != len(in) || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if want := "ulp: invalid container: /tmp/x\\x1b]0;t\\a.so\nsecond\\tline\n"; b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}
