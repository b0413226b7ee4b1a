package procfs

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strconv"
)

// Mapping is one line of /proc/PID/maps.
type Mapping struct {
	Start, End uint64
	Perms      string // "r-xp" etc.
	Offset     uint64 // file offset of Start
	Dev        string // "fd:01"
	Inode      uint64
	Path       string // file path, "[heap]" etc., or "" for anonymous memory
}

// Readable, Writable, Executable and Private decode Perms.
func (m Mapping) Readable() bool   { return len(m.Perms) > 0 && m.Perms[0] == 'r' }
func (m Mapping) Writable() bool   { return len(m.Perms) > 1 && m.Perms[1] == 'w' }
func (m Mapping) Executable() bool { return len(m.Perms) > 2 && m.Perms[2] == 'x' }
func (m Mapping) Private() bool    { return len(m.Perms) > 3 && m.Perms[3] == 'p' }

// Contains reports whether addr lies inside m.
func (m Mapping) Contains(addr uint64) bool { return addr >= m.Start && addr < m.End }

// Base returns the basename of m.Path ("" for anonymous memory).
func (m Mapping) Base() string {
	if m.Path == "" {
		return ""
	}
	return filepath.Base(m.Path)
}

// ParseMaps parses the text of /proc/PID/maps. A malformed line is an
// error naming the line number.
func ParseMaps(b []byte) ([]Mapping, error) {
	var out []Mapping
	for n := 1; len(b) > 0; n++ {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if len(line) == 0 {
			continue
		}
		m, err := parseMapsLine(line)
		if err != nil {
			return nil, fmt.Errorf("maps line %d: %w", n, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// parseMapsLine parses "start-end perms offset dev inode   path".
func parseMapsLine(line []byte) (Mapping, error) {
	var m Mapping
	f := line
	next := func() string {
		f = bytes.TrimLeft(f, " \t")
		i := bytes.IndexAny(f, " \t")
		if i < 0 {
			i = len(f)
		}
		tok := string(f[:i])
		f = f[i:]
		return tok
	}
	rng, perms, off, dev, inode := next(), next(), next(), next(), next()
	lo, hi, ok := cutString(rng, '-')
	if !ok {
		return m, fmt.Errorf("%w: address range %q", ErrFormat, rng)
	}
	var err error
	if m.Start, err = strconv.ParseUint(lo, 16, 64); err != nil {
		return m, fmt.Errorf("%w: start %q", ErrFormat, lo)
	}
	if m.End, err = strconv.ParseUint(hi, 16, 64); err != nil || m.End < m.Start {
		return m, fmt.Errorf("%w: end %q", ErrFormat, hi)
	}
	if len(perms) != 4 {
		return m, fmt.Errorf("%w: permissions %q", ErrFormat, perms)
	}
	m.Perms = perms
	if m.Offset, err = strconv.ParseUint(off, 16, 64); err != nil {
		return m, fmt.Errorf("%w: offset %q", ErrFormat, off)
	}
	if _, _, ok := cutString(dev, ':'); !ok {
		return m, fmt.Errorf("%w: device %q", ErrFormat, dev)
	}
	m.Dev = dev
	if m.Inode, err = strconv.ParseUint(inode, 10, 64); err != nil {
		return m, fmt.Errorf("%w: inode %q", ErrFormat, inode)
	}
	// The path is the rest of the line after the padding; it may hold
	// spaces, and the kernel appends " (deleted)" to unlinked files.
	m.Path = string(bytes.TrimLeft(f, " \t"))
	return m, nil
}

func cutString(s string, sep byte) (before, after string, ok bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], i > 0 && i+1 < len(s)
		}
	}
	return s, "", false
}

// Maps reads and parses /proc/pid/maps.
func Maps(pid int) ([]Mapping, error) {
	b, err := readFile(pid, "maps")
	if err != nil {
		return nil, err
	}
	m, err := ParseMaps(b)
	if err != nil {
		return nil, fmt.Errorf("pid %d: %w", pid, err)
	}
	return m, nil
}
