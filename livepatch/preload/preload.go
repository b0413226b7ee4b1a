package preload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"ulp/internal/atomicfile"
)

// File is the loader's system-wide preload list, relative to the root.
const File = "/etc/ld.so.preload"

// RuntimeName is the basename of the runtime's entries in File.
const RuntimeName = "libpulp.so.0"

// Errors of this package; test them with errors.Is.
var (
	// ErrNotLoadable: the runtime did not load into a test program, so
	// enabling it would break, or not cover, every program started later.
	ErrNotLoadable = errors.New("runtime does not load")
	// ErrBadRuntime: the runtime path is not absolute or not named
	// libpulp.so.0.
	ErrBadRuntime = errors.New("bad runtime path")
)

// Status is what File says about the runtime.
type Status struct {
	// File is the preload list's path on this host (under the root).
	File string
	// Runtime is the runtime entry (as written in File, so as the
	// loader sees it inside the root), "" when there is none.
	Runtime string
	// Missing is set when Runtime names a file that does not exist under
	// the root: the loader then prints an error for every program.
	Missing bool
	// Others are the entries of File that are not the runtime.
	Others []string
}

// Enabled reports whether File preloads the runtime.
func (s Status) Enabled() bool { return s.Runtime != "" }

// Manager manages File under Root.
type Manager struct {
	// Root is the folder the paths are relative to; "" means "/".
	Root string
	// Probe is the program run with the runtime preloaded to check that it
	// loads; it must print its own memory map when given /proc/self/maps.
	// "" means /bin/cat.
	Probe string
}

// Path returns where path p inside the root is on this host.
func (m Manager) Path(p string) string {
	if m.Root == "" || m.Root == "/" {
		return p
	}
	return filepath.Join(m.Root, p)
}

// Status reads File. A missing File is a disabled preload.
func (m Manager) Status() (Status, error) {
	st := Status{File: m.Path(File)}
	b, err := m.read()
	if err != nil {
		return st, err
	}
	for _, e := range Entries(b) {
		if isRuntime(e) {
			if st.Runtime == "" {
				st.Runtime = e
			}
			continue
		}
		st.Others = append(st.Others, e)
	}
	if st.Runtime != "" {
		if m.rooted() {
			st.Missing = !m.existsRooted(st.Runtime)
		} else if _, err := os.Stat(st.Runtime); err != nil {
			st.Missing = true
		}
	}
	return st, nil
}

// Enable makes File preload runtime (an absolute path inside the root),
// after checking that it loads. An existing runtime entry is replaced in
// place; otherwise the entry is appended on a line of its own. It reports
// whether File changed.
func (m Manager) Enable(ctx context.Context, runtime string) (bool, error) {
	if !filepath.IsAbs(runtime) || filepath.Base(runtime) != RuntimeName || strings.ContainsAny(runtime, " \t\n:#") {
		return false, fmt.Errorf("%w: %q: want an absolute path to %s without blanks, ':' or '#'", ErrBadRuntime, runtime, RuntimeName)
	}
	if err := m.CheckLoads(ctx, runtime); err != nil {
		return false, err
	}
	old, err := m.read()
	if err != nil {
		return false, err
	}
	updated, replaced := rewrite(old, func(e string) string {
		if isRuntime(e) {
			return runtime
		}
		return e
	})
	if !replaced {
		updated = old
		if len(updated) > 0 && updated[len(updated)-1] != '\n' {
			updated = append(updated, '\n')
		}
		updated = append(updated, runtime+"\n"...)
	}
	updated = dropRepeats(updated, runtime)
	if bytes.Equal(old, updated) {
		return false, nil
	}
	return true, m.write(updated)
}

// Disable removes every runtime entry from File, keeping the other entries,
// comments and blank lines. A File left with nothing but blanks is removed.
// It reports whether File changed.
func (m Manager) Disable() (bool, error) {
	old, err := m.read()
	if err != nil {
		return false, err
	}
	updated, removed := rewrite(old, func(e string) string {
		if isRuntime(e) {
			return ""
		}
		return e
	})
	if !removed {
		return false, nil
	}
	if len(bytes.TrimSpace(updated)) == 0 {
		if m.rooted() {
			return true, m.writeRooted(nil)
		}
		return true, atomicfile.Remove(File)
	}
	return true, m.write(updated)
}

// CheckLoads runs the probe program with runtime preloaded and checks that
// it ran and mapped the runtime. Under a Root other than "/", it checks the
// file without running it (checkStatic).
func (m Manager) CheckLoads(ctx context.Context, runtime string) error {
	if m.rooted() {
		return m.checkStatic(runtime)
	}
	file := runtime
	real, err := filepath.EvalSymlinks(file)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotLoadable, err)
	}
	probe := m.Probe
	if probe == "" {
		probe = "/bin/cat"
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, probe, "/proc/self/maps")
	cmd.Env = []string{"LD_PRELOAD=" + real, "PATH=/usr/bin:/bin"}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%w: %s with LD_PRELOAD=%s: %w: %s", ErrNotLoadable, probe, real, err, firstLine(stderr.String()))
	}
	for line := range strings.Lines(stdout.String()) {
		if strings.HasSuffix(strings.TrimSpace(line), " "+real) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s with LD_PRELOAD=%s ran but did not map it: %s", ErrNotLoadable, probe, real, firstLine(stderr.String()))
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if s == "" {
		return "no message"
	}
	return s
}

func (m Manager) read() ([]byte, error) {
	if m.rooted() {
		return m.readRooted(File)
	}
	b, err := os.ReadFile(File)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// write replaces File atomically with b, keeping its mode when it exists.
func (m Manager) write(b []byte) error {
	if m.rooted() {
		return m.writeRooted(b)
	}
	path := File
	mode := fs.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	return atomicfile.Write(path, mode, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}

// isRuntime reports whether entry e of File is the runtime.
func isRuntime(e string) bool { return filepath.Base(e) == RuntimeName }

// Entries returns the entries of a preload list: the words separated by
// blanks or ':' outside '#' comments, as the loader reads them.
func Entries(b []byte) []string {
	var out []string
	for line := range strings.Lines(string(b)) {
		line, _, _ = strings.Cut(line, "#")
		out = append(out, strings.FieldsFunc(line, isSep)...)
	}
	return out
}

func isSep(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == ':' }

// rewrite maps every entry of b through f, keeping everything else byte for
// byte; f returns "" to delete an entry. A line left empty by deletions is
// dropped. It reports whether any entry changed.
func rewrite(b []byte, f func(string) string) ([]byte, bool) {
	var out []byte
	changed := false
	for line := range strings.Lines(string(b)) {
		body, comment, hasComment := strings.Cut(line, "#")
		var nb strings.Builder
		lineChanged, kept := false, 0
		for i := 0; i < len(body); {
			if isSep(rune(body[i])) {
				nb.WriteByte(body[i])
				i++
				continue
			}
			j := i
			for j < len(body) && !isSep(rune(body[j])) {
				j++
			}
			e := body[i:j]
			if n := f(e); n != e {
				lineChanged = true
				e = n
			}
			if e != "" {
				kept++
			}
			nb.WriteString(e)
			i = j
		}
		if !lineChanged {
			out = append(out, line...)
			continue
		}
		changed = true
		if kept == 0 && !hasComment {
			continue
		}
		out = append(out, nb.String()...)
		if hasComment {
			out = append(out, '#')
			out = append(out, comment...)
		}
	}
	return out, changed
}

// dropRepeats keeps only the first entry equal to e.
func dropRepeats(b []byte, e string) []byte {
	seen := false
	out, _ := rewrite(b, func(x string) string {
		if x != e {
			return x
		}
		if seen {
			return ""
		}
		seen = true
		return x
	})
	return out
}
