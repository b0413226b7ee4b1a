package inventory

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// hostRange is one [beg:end:step] part of a host pattern.
type hostRange struct {
	alpha    bool
	beg, end int64
	step     int64
	width    int // zero-padded width of numeric ranges, 0 for none
	prefix   string
	count    int64
}

// expandRange expands Ansible host ranges in pattern: "web[01:03]" gives
// web01, web02, web03; "db-[a:c]" gives db-a, db-b, db-c; "[1:9:2]" steps
// by 2. Several ranges in one pattern multiply. A pattern without '[' is
// returned as it is. More than limit names is an error.
func expandRange(pattern string, limit int) ([]string, error) {
	if !strings.ContainsAny(pattern, "[]") {
		return []string{pattern}, nil
	}
	// Parse every range first to count the result before building it.
	var parts []hostRange
	s := pattern
	total := int64(1)
	for {
		i := strings.IndexByte(s, '[')
		if i < 0 {
			break
		}
		j := strings.IndexByte(s[i:], ']')
		if j < 0 {
			return nil, errors.New("host range: missing ']'")
		}
		r, err := parseRange(s[i+1 : i+j])
		if err != nil {
			return nil, err
		}
		r.prefix = s[:i]
		parts = append(parts, r)
		if r.count > int64(limit) || total*r.count > int64(limit) {
			return nil, fmt.Errorf("%w: host range expands to more than %d hosts", ErrTooLarge, limit)
		}
		total *= r.count
		s = s[i+j+1:]
	}
	if strings.IndexByte(s, ']') >= 0 {
		return nil, errors.New("host range: unexpected ']'")
	}
	out := []string{""}
	for _, r := range parts {
		next := make([]string, 0, int64(len(out))*r.count)
		for _, head := range out {
			for k := range r.count {
				next = append(next, head+r.prefix+r.format(r.beg+k*r.step))
			}
		}
		out = next
	}
	for i := range out {
		out[i] += s
	}
	return out, nil
}

func (r hostRange) format(v int64) string {
	if r.alpha {
		return string(rune(v))
	}
	s := strconv.FormatInt(v, 10)
	if len(s) < r.width {
		s = strings.Repeat("0", r.width-len(s)) + s
	}
	return s
}

// parseRange parses the inside of [beg:end] or [beg:end:step].
func parseRange(s string) (hostRange, error) {
	f := strings.Split(s, ":")
	if len(f) < 2 || len(f) > 3 {
		return hostRange{}, fmt.Errorf("host range [%s]: want [begin:end] or [begin:end:step]", s)
	}
	r := hostRange{step: 1}
	if len(f) == 3 {
		st, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil || st < 1 {
			return hostRange{}, fmt.Errorf("host range [%s]: step must be a positive number", s)
		}
		r.step = st
	}
	beg, end := f[0], f[1]
	if beg == "" {
		beg = "0"
	}
	switch {
	case isLetter(beg) && isLetter(end):
		r.alpha = true
		r.beg, r.end = int64(beg[0]), int64(end[0])
		if (beg[0] >= 'a') != (end[0] >= 'a') {
			return hostRange{}, fmt.Errorf("host range [%s]: mixes upper and lower case", s)
		}
	default:
		b, err1 := strconv.ParseInt(beg, 10, 64)
		e, err2 := strconv.ParseInt(end, 10, 64)
		if err1 != nil || err2 != nil || b < 0 || e < 0 {
			return hostRange{}, fmt.Errorf("host range [%s]: begin and end must be numbers or single letters", s)
		}
		if len(beg) > 1 && beg[0] == '0' {
			if len(beg) != len(end) {
				return hostRange{}, fmt.Errorf("host range [%s]: zero-padded begin and end must have the same width", s)
			}
			r.width = len(beg)
		}
		r.beg, r.end = b, e
	}
	if r.end < r.beg {
		return hostRange{}, fmt.Errorf("host range [%s]: end is before begin", s)
	}
	r.count = (r.end-r.beg)/r.step + 1
	if r.count <= 0 { // overflow on a range spanning all of int64
		return hostRange{}, fmt.Errorf("%w: host range [%s] is too long", ErrTooLarge, s)
	}
	return r, nil
}

func isLetter(s string) bool {
	return len(s) == 1 && (s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z')
}
