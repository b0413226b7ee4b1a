package remote

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

func TestQuote(t *testing.T) {
	tests := []struct {
		argv []string
		want string
	}{
		{nil, ""},
		{[]string{"true"}, "true"},
		{[]string{"/var/lib/ulp/ulp", "trigger", "--json", "-p", "1234"}, "/var/lib/ulp/ulp trigger --json -p 1234"},
		{[]string{""}, "''"},
		{[]string{"two words"}, "'two words'"},
		{[]string{"it's"}, `'it'\''s'`},
		{[]string{"$HOME", "`id`", "a;b", "*", "x=y", "~"}, `'$HOME' '` + "`id`" + `' 'a;b' '*' 'x=y' '~'`},
		{[]string{"new\nline"}, "'new\nline'"},
	}
	for _, tt := range tests {
		if got := Quote(tt.argv); got != tt.want {
			t.Errorf("Quote(%q) = %q, want %q", tt.argv, got, tt.want)
		}
	}
}

// TestCommand pins the exact remote command lines.
func TestCommand(t *testing.T) {
	tests := []struct {
		argv []string
		want string
	}{
		{[]string{"sha256sum", "--", "/var/lib/ulp/agent"},
			`sh -c 'echo ulp-pid-0123456789abcdef:$$; exec "$@"' sh sha256sum -- /var/lib/ulp/agent`},
		{[]string{"sudo", "-n", "--", "/var/lib/ulp/ulp", "trigger", "--json", "/var/lib/ulp/patches/p 1.so"},
			`sh -c 'echo ulp-pid-0123456789abcdef:$$; exec "$@"' sh sudo -n -- /var/lib/ulp/ulp trigger --json '/var/lib/ulp/patches/p 1.so'`},
	}
	for _, tt := range tests {
		if got := command(tt.argv, "ulp-pid-0123456789abcdef:"); got != tt.want {
			t.Errorf("command(%q) =\n %s\nwant\n %s", tt.argv, got, tt.want)
		}
	}
}

// FuzzQuote checks with a real shell that Quote round-trips any argv.
func FuzzQuote(f *testing.F) {
	f.Add("plain", "it's \"x\" $y `z`", "\n\t\\")
	f.Add("", "-n", "*?[a]")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		args := []string{a, b, c}
		for _, s := range args {
			if strings.ContainsRune(s, 0) {
				return // a NUL cannot be in an argv
			}
		}
		out, err := exec.Command("sh", "-c", "printf '%s\\000' "+Quote(args)).Output()
		if err != nil {
			t.Fatalf("sh: %v", err)
		}
		got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
		if strings.Join(got, "\x00") != strings.Join(args, "\x00") {
			t.Fatalf("argv %q came out as %q", args, got)
		}
	})
}

// FuzzPidFilter feeds arbitrary remote output, in arbitrary chunks, to the
// filter that strips the PID line: it never panics, and passes through
// exactly what follows the PID line, or everything when there is none.
func FuzzPidFilter(f *testing.F) {
	f.Add([]byte("banner\nulp-pid-0123456789abcdef:42\nhello\n"), uint8(3))
	f.Add([]byte("ulp-pid-0123456789abcdef:notanumber\nx"), uint8(1))
	f.Add([]byte("no marker at all"), uint8(0))
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8) {
		var out bytes.Buffer
		const mk = "ulp-pid-0123456789abcdef:"
		pf := newPIDFilter(&out, mk)
		n := int(chunk) + 1
		for i := 0; i < len(in); i += n {
			pf.Write(in[i:min(i+n, len(in))])
		}
		pf.flush()
		marker := []byte(mk)
		var want []byte
		// Expected: the text after the first line that contains the
		// marker, if such a line is complete within the first 64 KiB.
		want = in
		rest := in
		for consumed := 0; consumed <= 64<<10; {
			i := bytes.IndexByte(rest, '\n')
			if i < 0 {
				break
			}
			if bytes.Contains(rest[:i], marker) {
				want = rest[i+1:]
				break
			}
			consumed += i + 1
			rest = rest[i+1:]
		}
		if len(in) <= 64<<10 && !bytes.Equal(out.Bytes(), want) {
			t.Fatalf("output %q, want %q", out.Bytes(), want)
		}
	})
}
