package udiff

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
)

// Limits on a parsed patch.
const (
	MaxSize  = 16 << 20
	MaxFiles = 1000
)

// ErrFormat tags malformed diffs.
var ErrFormat = errors.New("malformed diff")

// Patch is a parsed unified diff.
type Patch struct {
	// Header is the text before the first file (a commit message, the
	// DEP-3 header of a Debian patch).
	Header string
	Files  []File
}

// File is the change of one file. Old or New is empty for a file the patch
// creates or deletes.
type File struct {
	Old, New string // paths without their first component (-p1)
	Hunks    []Hunk
}

// Path returns the file's path: New, or Old for a deleted file.
func (f *File) Path() string {
	if f.New != "" {
		return f.New
	}
	return f.Old
}

// Hunk is one @@ section.
type Hunk struct {
	OldStart, OldLines int
	NewStart, NewLines int
	// Added are the line numbers, after the patch, of the added lines.
	Added []int
	// Removed are the line numbers, after the patch, next to which lines
	// were removed: the line that now follows them.
	Removed []int
}

// Range is an inclusive range of line numbers.
type Range struct{ Lo, Hi int }

// Changed returns the line ranges, after the patch, that the patch changed:
// every added line, and the two lines around each removal.
func (f *File) Changed() []Range {
	var out []Range
	for _, h := range f.Hunks {
		for _, l := range h.Added {
			out = append(out, Range{l, l})
		}
		for _, l := range h.Removed {
			out = append(out, Range{max(l-1, 1), l})
		}
	}
	return out
}

// Parse parses a unified diff.
func Parse(data []byte) (*Patch, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrFormat, MaxSize)
	}
	lines := strings.Split(string(data), "\n")
	p := &Patch{}
	var header []string
	inHeader := true
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSuffix(lines[i], "\r")
		if strings.HasPrefix(l, "--- ") && i+1 < len(lines) && strings.HasPrefix(lines[i+1], "+++ ") {
			inHeader = false
			if len(p.Files) >= MaxFiles {
				return nil, fmt.Errorf("%w: more than %d files", ErrFormat, MaxFiles)
			}
			old, err := stripPath(l[4:])
			if err != nil {
				return nil, fmt.Errorf("%w: line %d: %w", ErrFormat, i+1, err)
			}
			nw, err := stripPath(strings.TrimSuffix(lines[i+1], "\r")[4:])
			if err != nil {
				return nil, fmt.Errorf("%w: line %d: %w", ErrFormat, i+2, err)
			}
			if old == "" && nw == "" {
				return nil, fmt.Errorf("%w: line %d: both sides are /dev/null", ErrFormat, i+1)
			}
			f := File{Old: old, New: nw}
			i += 2
			for i < len(lines) && strings.HasPrefix(lines[i], "@@ ") {
				h, next, err := parseHunk(lines, i)
				if err != nil {
					return nil, err
				}
				f.Hunks = append(f.Hunks, h)
				i = next
			}
			if len(f.Hunks) == 0 {
				return nil, fmt.Errorf("%w: line %d: file %s has no hunk", ErrFormat, i+1, f.Path())
			}
			p.Files = append(p.Files, f)
			i--
			continue
		}
		if inHeader {
			header = append(header, l)
			continue
		}
		switch {
		case strings.HasPrefix(l, "Binary files ") || strings.HasPrefix(l, "GIT binary patch"):
			return nil, fmt.Errorf("%w: line %d: binary changes cannot be applied with patch", ErrFormat, i+1)
		case strings.HasPrefix(l, "rename from ") || strings.HasPrefix(l, "copy from "):
			return nil, fmt.Errorf("%w: line %d: renames and copies are not supported", ErrFormat, i+1)
		}
	}
	if len(p.Files) == 0 {
		return nil, fmt.Errorf("%w: no file changes (no ---/+++ lines)", ErrFormat)
	}
	p.Header = strings.TrimSpace(strings.Join(header, "\n"))
	return p, nil
}

// stripPath removes the timestamp and the first component of a ---/+++
// path; /dev/null is "".
func stripPath(s string) (string, error) {
	if i := strings.IndexByte(s, '\t'); i >= 0 {
		s = s[:i]
	}
	s = strings.TrimSpace(s)
	if s == "/dev/null" {
		return "", nil
	}
	if strings.HasPrefix(s, "\"") {
		return "", fmt.Errorf("quoted path %s is not supported", s)
	}
	_, rest, ok := strings.Cut(s, "/")
	if !ok || rest == "" {
		return "", fmt.Errorf("path %q has no leading component to strip (-p1)", s)
	}
	clean := path.Clean(rest)
	if path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") || clean == "." {
		return "", fmt.Errorf("path %q leaves the tree", s)
	}
	return clean, nil
}

// parseHunk parses the hunk whose @@ line is lines[i]; it returns the
// index of the line after it.
func parseHunk(lines []string, i int) (Hunk, int, error) {
	var h Hunk
	var err error
	at := lines[i]
	rest, ok := strings.CutPrefix(at, "@@ -")
	end := strings.Index(rest, " @@")
	if !ok || end < 0 {
		return h, 0, fmt.Errorf("%w: line %d: bad hunk header %q", ErrFormat, i+1, at)
	}
	oldR, newR, ok := strings.Cut(rest[:end], " +")
	if !ok {
		return h, 0, fmt.Errorf("%w: line %d: bad hunk header %q", ErrFormat, i+1, at)
	}
	if h.OldStart, h.OldLines, err = parseRange(oldR); err == nil {
		h.NewStart, h.NewLines, err = parseRange(newR)
	}
	if err != nil {
		return h, 0, fmt.Errorf("%w: line %d: %w", ErrFormat, i+1, err)
	}
	o, n := 0, 0
	newLine := h.NewStart
	if h.NewLines == 0 {
		newLine++ // "+N,0" names the line before the removal
	}
	i++
	for ; i < len(lines) && (o < h.OldLines || n < h.NewLines); i++ {
		l := strings.TrimSuffix(lines[i], "\r")
		switch {
		case strings.HasPrefix(l, "\\"):
			continue
		case l == "" || l[0] == ' ':
			o++
			n++
			newLine++
		case l[0] == '-':
			o++
			h.Removed = append(h.Removed, newLine)
		case l[0] == '+':
			n++
			h.Added = append(h.Added, newLine)
			newLine++
		default:
			return h, 0, fmt.Errorf("%w: line %d: unexpected line in hunk: %q", ErrFormat, i+1, l)
		}
	}
	if o != h.OldLines || n != h.NewLines {
		return h, 0, fmt.Errorf("%w: hunk at %q is truncated", ErrFormat, at)
	}
	for i < len(lines) && strings.HasPrefix(lines[i], "\\") {
		i++
	}
	return h, i, nil
}

func parseRange(s string) (start, n int, err error) {
	a, b, ok := strings.Cut(s, ",")
	n = 1
	if start, err = strconv.Atoi(a); err != nil || start < 0 || start > 1<<30 {
		return 0, 0, fmt.Errorf("bad line number %q", a)
	}
	if ok {
		if n, err = strconv.Atoi(b); err != nil || n < 0 || n > 1<<30 {
			return 0, 0, fmt.Errorf("bad line count %q", b)
		}
	}
	return start, n, nil
}
