package procfs

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Status holds the fields of /proc/PID/status the agent uses.
type Status struct {
	Name      string
	State     byte // 'R', 'S', 'D', 'T' (stopped), 't' (tracing stop), 'Z', ...
	Tgid      int
	PID       int
	PPid      int
	TracerPid int
	Uid       [4]int // real, effective, saved, filesystem
	Gid       [4]int
	Threads   int
	SigBlk    uint64
	SigIgn    uint64
	SigCgt    uint64 // signals with a handler installed
	CapEff    uint64 // effective capabilities (bit 19: CAP_SYS_PTRACE)
	// Kthread is set for a kernel thread (the "Kthread: 1" line of Linux
	// 6.0 and later; older kernels print none).
	Kthread bool
	// Seccomp is the process's seccomp mode: 0 none, 1 strict, 2 filter.
	Seccomp int
}

// ParseStatus parses the text of /proc/PID/status. Unknown lines are
// ignored; a known line with a malformed value is an error.
func ParseStatus(b []byte) (*Status, error) {
	var s Status
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		key, val, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		v := strings.TrimSpace(string(val))
		var err error
		switch string(key) {
		case "Name":
			s.Name = v
		case "State":
			if v == "" {
				err = fmt.Errorf("empty")
			} else {
				s.State = v[0]
			}
		case "Tgid":
			s.Tgid, err = strconv.Atoi(v)
		case "Pid":
			s.PID, err = strconv.Atoi(v)
		case "PPid":
			s.PPid, err = strconv.Atoi(v)
		case "TracerPid":
			s.TracerPid, err = strconv.Atoi(v)
		case "Uid":
			s.Uid, err = ids4(v)
		case "Gid":
			s.Gid, err = ids4(v)
		case "Threads":
			s.Threads, err = strconv.Atoi(v)
		case "SigBlk":
			s.SigBlk, err = strconv.ParseUint(v, 16, 64)
		case "SigIgn":
			s.SigIgn, err = strconv.ParseUint(v, 16, 64)
		case "SigCgt":
			s.SigCgt, err = strconv.ParseUint(v, 16, 64)
		case "CapEff":
			s.CapEff, err = strconv.ParseUint(v, 16, 64)
		case "Kthread":
			s.Kthread, err = strconv.ParseBool(v)
		case "Seccomp":
			s.Seccomp, err = strconv.Atoi(v)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: status %s %q: %w", ErrFormat, key, v, err)
		}
	}
	if s.PID == 0 {
		return nil, fmt.Errorf("%w: status without Pid", ErrFormat)
	}
	return &s, nil
}

func ids4(v string) ([4]int, error) {
	var out [4]int
	f := strings.Fields(v)
	if len(f) != 4 {
		return out, fmt.Errorf("%d fields, want 4", len(f))
	}
	for i, s := range f {
		n, err := strconv.Atoi(s)
		if err != nil {
			return out, err
		}
		out[i] = n
	}
	return out, nil
}

// ReadStatus reads and parses /proc/pid/status.
func ReadStatus(pid int) (*Status, error) {
	b, err := readFile(pid, "status")
	if err != nil {
		return nil, err
	}
	s, err := ParseStatus(b)
	if err != nil {
		return nil, fmt.Errorf("pid %d: %w", pid, err)
	}
	return s, nil
}
