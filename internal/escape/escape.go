package escape

import (
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Text returns s with every character that is not printable (control
// characters, newlines, ESC, DEL, C1 controls, bidi and other format
// characters) written as Go writes it in a quoted string (\n, \t, \x1b,
// \u202e), bytes that are not UTF-8 as \xNN, and the backslash as \\, so
// that the result reads unambiguously. Printable text, spaces included,
// is unchanged. Every string the agent or ulpfleet prints as text and did
// not write itself (process names, paths, ledger and ring strings,
// container names and comments, host names and their rows) goes through
// Text; JSON output is escaped by encoding/json.
func Text(s string) string {
	if plain(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b.WriteString(`\x`)
			b.WriteString(strconv.FormatUint(uint64(s[i])>>4, 16))
			b.WriteString(strconv.FormatUint(uint64(s[i])&15, 16))
		case r == '\\':
			b.WriteString(`\\`)
		case r == ' ' || unicode.IsPrint(r):
			b.WriteString(s[i : i+n])
		default:
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		}
		i += n
	}
	return b.String()
}

// plain reports whether s is printable ASCII without a backslash.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c > '~' || c == '\\' {
			return false
		}
	}
	return true
}

// Texts is Text of each of ss.
func Texts(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = Text(s)
	}
	return out
}

// Lines is Text of each line of s, its newlines kept: for messages that
// may span lines (joined errors) whose text is not the program's own.
func Lines(s string) string {
	if plain(strings.ReplaceAll(s, "\n", "")) {
		return s
	}
	ls := strings.Split(s, "\n")
	for i, l := range ls {
		ls[i] = Text(l)
	}
	return strings.Join(ls, "\n")
}

// LineWriter writes what it is given through Lines: a command's error
// message, printed in one write, keeps its lines and loses its control
// characters.
type LineWriter struct{ W io.Writer }

func (lw LineWriter) Write(p []byte) (int, error) {
	if _, err := io.WriteString(lw.W, Lines(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}
