package dsc

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"ulp/internal/escape"
)

// MaxSize bounds a description file.
const MaxSize = 1 << 20

// Pos is a 1-based line and column (in bytes) in a description.
type Pos struct {
	Line, Col int
}

// Error is one problem in a description, at a position.
type Error struct {
	File   string
	Pos    Pos
	Msg    string
	Source string // the offending line, for a caret display
	Err    error  // the cause the message wraps with %w, if any
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d:%d: error: %s", e.File, e.Pos.Line, e.Pos.Col, e.Msg)
}

// Unwrap returns the cause, so that errors.Is and errors.As see through a
// diagnostic to the error it reports.
func (e *Error) Unwrap() error { return e.Err }

// Caret returns the source line and a caret line under the column, or ""
// when the error has no source line. The line is the description's text,
// so it is escaped as internal/escape.Text escapes what the agent prints
// (an ESC, a carriage return or a bidi control in a .dsc cannot drive the
// terminal), and the caret stands under the escaped text.
func (e *Error) Caret() string {
	if e.Source == "" {
		return ""
	}
	col := min(max(e.Pos.Col-1, 0), len(e.Source))
	pad := strings.Repeat(" ", utf8.RuneCountInString(escape.Text(e.Source[:col])))
	return escape.Text(e.Source) + "\n" + pad + "^"
}

// Func is an `old:new[:old_offset]` line.
type Func struct {
	Old, New     string
	OldOffset    uint64 // valid when HasOldOffset
	HasOldOffset bool
	Pos          Pos // of old
	NewPos       Pos
}

// Ref is a `#[%]target_var:patch_ref[:target_off:patch_off]` line.
type Ref struct {
	TargetVar, PatchRef       string
	TargetOffset, PatchOffset uint64 // valid when HasOffsets
	HasOffsets                bool
	TLS                       bool
	Pos                       Pos // of target_var
	RefPos                    Pos
}

// Desc is a parsed description.
type Desc struct {
	File         string // the description's name, for messages
	Livepatch    string // path of the livepatch .so, resolved against File's folder
	LivepatchPos Pos
	Target       string // path of the target ELF or JSON dump, resolved likewise
	TargetPos    Pos
	Funcs        []Func
	Refs         []Ref
	Comments     []string // the '!' lines, without the '!'
	lines        []string
}

// Errorf returns an *Error at p in d, with the source line attached.
func (d *Desc) Errorf(p Pos, format string, args ...any) *Error {
	msg := fmt.Errorf(format, args...)
	e := &Error{File: d.File, Pos: p, Msg: msg.Error(), Err: errors.Unwrap(msg)}
	if p.Line >= 1 && p.Line <= len(d.lines) {
		e.Source = d.lines[p.Line-1]
	}
	return e
}

// CommentText returns the comments joined by newlines, as stored in
// .ulp.comments.
func (d *Desc) CommentText() string { return strings.Join(d.Comments, "\n") }

// ParseFile reads and parses the description at path.
func ParseFile(path string) (*Desc, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return Parse(path, data)
}

// Parse parses a description named name (a path: relative paths inside it
// are resolved against its folder). It returns every error found, joined;
// each is an *Error.
func Parse(name string, data []byte) (*Desc, error) {
	d := &Desc{File: name}
	if len(data) > MaxSize {
		return nil, d.Errorf(Pos{1, 1}, "description larger than %d bytes", MaxSize)
	}
	d.lines = strings.Split(strings.TrimPrefix(string(data), "\ufeff"), "\n")
	var errs []error
	fail := func(e *Error) { errs = append(errs, e) }
	seenOld := make(map[string]int)
	for i, raw := range d.lines {
		ln := i + 1
		raw = strings.TrimSuffix(raw, "\r")
		d.lines[i] = raw
		if !utf8.ValidString(raw) {
			fail(d.Errorf(Pos{ln, 1}, "line is not valid UTF-8"))
			continue
		}
		if c := strings.IndexByte(raw, 0); c >= 0 {
			fail(d.Errorf(Pos{ln, c + 1}, "NUL byte in line"))
			continue
		}
		start := len(raw) - len(strings.TrimLeftFunc(raw, unicode.IsSpace))
		line := strings.TrimRightFunc(raw[start:], unicode.IsSpace)
		col := start + 1
		switch {
		case line == "":
		case line[0] == '!':
			d.Comments = append(d.Comments, strings.TrimSpace(line[1:]))
		case d.Livepatch == "" && d.LivepatchPos.Line == 0:
			d.LivepatchPos = Pos{ln, col}
			if strings.ContainsAny(line[:1], "@#*") {
				fail(d.Errorf(Pos{ln, col}, "expected the livepatch path first, found %q", line))
				continue
			}
			d.Livepatch = d.resolve(line)
		case line[0] == '*':
			fail(d.Errorf(Pos{ln, col}, "dependency lines ('*') are not supported"))
		case line[0] == '@':
			path := strings.TrimSpace(line[1:])
			if d.TargetPos.Line != 0 {
				fail(d.Errorf(Pos{ln, col}, "second target: a patch applies to exactly one object (first target on line %d)", d.TargetPos.Line))
				continue
			}
			d.TargetPos = Pos{ln, col}
			if path == "" {
				fail(d.Errorf(Pos{ln, col + 1}, "empty target path"))
				continue
			}
			d.Target = d.resolve(path)
		case line[0] == '#':
			r, err := d.parseRef(line, ln, col)
			if err != nil {
				fail(err)
				continue
			}
			d.Refs = append(d.Refs, r)
		default:
			f, err := d.parseFunc(line, ln, col)
			if err != nil {
				fail(err)
				continue
			}
			key := f.Old
			if f.HasOldOffset {
				key += ":" + strconv.FormatUint(f.OldOffset, 16)
			}
			if first, ok := seenOld[key]; ok {
				fail(d.Errorf(f.Pos, "function %q replaced twice (first on line %d)", f.Old, first))
				continue
			}
			seenOld[key] = ln
			d.Funcs = append(d.Funcs, f)
		}
	}
	// What is missing is reported only when nothing else went wrong: a
	// malformed line often explains it.
	switch {
	case len(errs) > 0:
	case d.LivepatchPos.Line == 0:
		fail(d.Errorf(Pos{len(d.lines), 1}, "no livepatch path"))
	case d.TargetPos.Line == 0:
		fail(d.Errorf(d.LivepatchPos, "no target: add a line '@path/to/library.so'"))
	case len(d.Funcs) == 0:
		fail(d.Errorf(d.LivepatchPos, "no function to replace: add a line 'old:new'"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return d, nil
}

func (d *Desc) resolve(path string) string {
	if filepath.IsAbs(path) {
		return filepath.Clean(path)
	}
	return filepath.Join(filepath.Dir(d.File), path)
}

// fields splits line at ':' and returns each field with its column.
func fields(line string, col int) ([]string, []int) {
	parts := strings.Split(line, ":")
	cols := make([]int, len(parts))
	c := col
	for i, p := range parts {
		cols[i] = c
		c += len(p) + 1
	}
	return parts, cols
}

func (d *Desc) symbol(s string, ln, col int, what string) *Error {
	if s == "" {
		return d.Errorf(Pos{ln, col}, "empty %s name", what)
	}
	if i := strings.IndexFunc(s, unicode.IsSpace); i >= 0 {
		return d.Errorf(Pos{ln, col + i}, "space in %s name %q", what, s)
	}
	if len(s) > 4096 {
		return d.Errorf(Pos{ln, col}, "%s name longer than 4096 bytes", what)
	}
	return nil
}

func (d *Desc) hex(s string, ln, col int, what string) (uint64, *Error) {
	v, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X"), 16, 64)
	if err != nil || s == "" {
		return 0, d.Errorf(Pos{ln, col}, "%s %q is not a hex number", what, s)
	}
	return v, nil
}

func (d *Desc) parseFunc(line string, ln, col int) (Func, *Error) {
	parts, cols := fields(line, col)
	if len(parts) < 2 || len(parts) > 3 {
		return Func{}, d.Errorf(Pos{ln, col}, "expected 'old:new' or 'old:new:old_offset', found %q", line)
	}
	f := Func{Old: parts[0], New: parts[1], Pos: Pos{ln, cols[0]}, NewPos: Pos{ln, cols[1]}}
	if err := d.symbol(f.Old, ln, cols[0], "old function"); err != nil {
		return Func{}, err
	}
	if err := d.symbol(f.New, ln, cols[1], "new function"); err != nil {
		return Func{}, err
	}
	if len(parts) == 3 {
		var err *Error
		if f.OldOffset, err = d.hex(parts[2], ln, cols[2], "old function offset"); err != nil {
			return Func{}, err
		}
		f.HasOldOffset = true
	}
	return f, nil
}

func (d *Desc) parseRef(line string, ln, col int) (Ref, *Error) {
	body, bcol := line[1:], col+1
	r := Ref{}
	if strings.HasPrefix(body, "%") {
		r.TLS = true
		body, bcol = body[1:], bcol+1
	}
	parts, cols := fields(body, bcol)
	if len(parts) != 2 && len(parts) != 4 {
		return Ref{}, d.Errorf(Pos{ln, col}, "expected '#target_var:patch_ref' or '#target_var:patch_ref:target_off:patch_off', found %q", line)
	}
	r.TargetVar, r.PatchRef = parts[0], parts[1]
	r.Pos, r.RefPos = Pos{ln, cols[0]}, Pos{ln, cols[1]}
	if err := d.symbol(r.TargetVar, ln, cols[0], "target variable"); err != nil {
		return Ref{}, err
	}
	if err := d.symbol(r.PatchRef, ln, cols[1], "patch reference"); err != nil {
		return Ref{}, err
	}
	if len(parts) == 4 {
		var err *Error
		if r.TargetOffset, err = d.hex(parts[2], ln, cols[2], "target offset"); err != nil {
			return Ref{}, err
		}
		if r.PatchOffset, err = d.hex(parts[3], ln, cols[3], "patch offset"); err != nil {
			return Ref{}, err
		}
		r.HasOffsets = true
	}
	return r, nil
}
