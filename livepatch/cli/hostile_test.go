package cli

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"ulp/internal/testenv"
	"ulp/livepatch/elfsym"
	"ulp/livepatch/report"
	"ulp/livepatch/trigger/triggertest"
)

// TestNonRegularContainer: a FIFO, a device or a folder given as the
// container is refused at once by every command that reads containers
// (before, a FIFO hung trigger and dump forever, whatever --timeout said):
// exit status 2, the kind of file named, the process untouched.
func TestNonRegularContainer(t *testing.T) {
	fx := triggertest.Build(t)
	p := triggertest.Start(t, nil, fx.App)
	pid := strconv.Itoa(p.PID)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fix.so")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "k")
	if _, stderr, code := runBuildCommand(t, "keygen", key); code != 0 {
		t.Fatalf("keygen: %s", stderr)
	}
	files := []struct{ path, kind string }{
		{fifo, "a FIFO"},
		{"/dev/zero", "a device"},
		{dir, "a directory"},
	}
	commands := []struct {
		name string
		args func(path string) []string
	}{
		{"trigger", func(c string) []string { return []string{"trigger", "-p", pid, "--timeout=1s", c} }},
		{"trigger --revert", func(c string) []string { return []string{"trigger", "-p", pid, "--revert", c} }},
		{"trigger --trusted", func(c string) []string { return []string{"trigger", "-p", pid, "--trusted", dir, c} }},
		{"dump", func(c string) []string { return []string{"dump", c} }},
		{"check", func(c string) []string { return []string{"check", "-p", pid, c} }},
		{"verify", func(c string) []string { return []string{"verify", "--pub", key + ".pub", c} }},
		{"sign", func(c string) []string { return []string{"sign", "--key", key + ".key", c} }},
	}
	for _, f := range files {
		for _, c := range commands {
			t.Run(c.name+" "+f.kind, func(t *testing.T) {
				type result struct {
					stdout, stderr string
					code           int
				}
				done := make(chan result, 1)
				go func() {
					o, e, code := inspectRun(t, c.args(f.path)...)
					done <- result{o, e, code}
				}()
				var r result
				select {
				case r = <-done:
				case <-time.After(10 * time.Second):
					t.Fatalf("ulp %s %s still running after 10 s", c.name, f.kind)
				}
				if r.code != report.ExitUsage || !strings.Contains(r.stderr, "not a regular file ("+f.kind+")") {
					t.Errorf("exit %d, stderr %q; want %d and \"not a regular file (%s)\"", r.code, r.stderr, report.ExitUsage, f.kind)
				}
			})
		}
	}
	if got := p.Ask(t, "value"); got != "100" {
		t.Errorf("calc_value = %s, want 100", got)
	}
	p.Untraced(t)
}

// craftedELF writes at path a sparse file of size bytes whose ELF header
// claims a .symtab of symtab bytes (all zeros, as the holes of the file
// read): what a user may map under the name libpulp.so.0 to make root's
// agent read it.
func craftedELF(t *testing.T, path string, size, symtab uint64) {
	t.Helper()
	le := binary.LittleEndian
	b := make([]byte, 8192)
	copy(b, "\x7fELF\x02\x01\x01")
	le.PutUint16(b[16:], uint16(elf.ET_DYN))
	le.PutUint16(b[18:], uint16(elf.EM_X86_64))
	le.PutUint32(b[20:], 1)
	le.PutUint64(b[32:], 64)   // e_phoff
	le.PutUint64(b[40:], 4096) // e_shoff
	le.PutUint16(b[52:], 64)
	le.PutUint16(b[54:], 56)
	le.PutUint16(b[56:], 1)
	le.PutUint16(b[58:], 64)
	le.PutUint16(b[60:], 4)
	le.PutUint16(b[62:], 3)
	ph := b[64:]
	le.PutUint32(ph, uint32(elf.PT_LOAD))
	le.PutUint32(ph[4:], uint32(elf.PF_R))
	le.PutUint64(ph[32:], 8192)
	le.PutUint64(ph[40:], 8192)
	names := "\x00.symtab\x00.strtab\x00.shstrtab\x00"
	copy(b[3584:], names)
	sh := func(i int, name uint32, typ elf.SectionType, off, size uint64, link uint32) {
		s := b[4096+64*i:]
		le.PutUint32(s, name)
		le.PutUint32(s[4:], uint32(typ))
		le.PutUint64(s[24:], off)
		le.PutUint64(s[32:], size)
		le.PutUint32(s[40:], link)
		le.PutUint64(s[56:], 24)
	}
	sh(1, 1, elf.SHT_SYMTAB, 1<<20, symtab, 2)
	sh(2, 9, elf.SHT_STRTAB, 3072, 16, 0)
	sh(3, 17, elf.SHT_STRTAB, 3584, uint64(len(names)), 0)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, int64(size)); err != nil {
		t.Fatal(err)
	}
}

// TestHostileMapping_BoundedAgent: a regular user's process maps a sparse
// 2 GiB file named libpulp.so.0 whose header claims a 2 GiB .symtab (or
// one of exactly elfsym.MaxSymbols entries, all read). Root's `ulp
// patches` and `ulp trigger` report an ERROR for that process alone, in
// bounded time and memory (the agent's peak RSS, from getrusage, stays
// under 24 MiB, 10 MiB measured; before, 3 GB and over 120 s).
func TestHostileMapping_BoundedAgent(t *testing.T) {
	testenv.Require(t, testenv.Root, testenv.Ptrace)
	ulp := testenv.Artifact(t, "ulp")
	fx := triggertest.Build(t)
	dir := worldDir(t)
	mapfile := filepath.Join(dir, "mapfile")
	testenv.CompileC(t, mapfile, nil, "testdata/mapfile.c")
	tests := []struct {
		name   string
		symtab uint64
		reason string
	}{
		{"2 GiB symtab", 2 << 30, "more than 2097152 symbols"},
		{"MaxSymbols symtab", elfsym.MaxSymbols * 24, "symbol not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_"))
			if err := os.Mkdir(sub, 0o755); err != nil {
				t.Fatal(err)
			}
			lib := filepath.Join(sub, "libpulp.so.0")
			craftedELF(t, lib, 2<<30+1<<20, tt.symtab)
			cmd := exec.Command(mapfile, lib)
			cmd.SysProcAttr = asNobody()
			_, out := testenv.StartPiped(t, cmd)
			if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
				t.Fatalf("mapfile: %q %v", line, err)
			}
			pid := strconv.Itoa(cmd.Process.Pid)
			for _, args := range [][]string{
				{"patches", "-p", pid},
				{"patches", "--json", "-p", pid},
				{"trigger", "-p", pid, fx.LP["lp200"]},
				{"messages", "-p", pid},
			} {
				run := exec.Command(ulp, args...)
				var stdout, stderr bytes.Buffer
				run.Stdout, run.Stderr = &stdout, &stderr
				t0 := time.Now()
				err := run.Run()
				took := time.Since(t0)
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() != 1 {
					t.Errorf("ulp %s: %v, want exit status 1 (stderr %q)", strings.Join(args, " "), err, stderr.String())
				}
				rss := run.ProcessState.SysUsage().(*syscall.Rusage).Maxrss // KiB
				t.Logf("ulp %s: %v, peak RSS %d KiB", strings.Join(args, " "), took.Round(time.Millisecond), rss)
				if rss > 24<<10 || took > 10*time.Second {
					t.Errorf("ulp %s took %v and %d KiB; want under 10 s and 24 MiB", strings.Join(args, " "), took, rss)
				}
				if !strings.Contains(stdout.String()+stderr.String(), tt.reason) {
					t.Errorf("ulp %s: output %q, want the reason %q", strings.Join(args, " "), stdout.String()+stderr.String(), tt.reason)
				}
			}
		})
	}
}

// TestForgedLines: a process's name (what prctl(PR_SET_NAME) sets), a
// container's file name and its comments, with newlines, ESC/OSC
// sequences and carriage returns, cannot forge a line of the text output
// of trigger, patches, messages, dump or check: every such character is
// printed escaped, and no line about another process appears.
func TestForgedLines(t *testing.T) {
	fx := triggertest.Build(t)
	p := triggertest.Start(t, []string{"APP_NAME=u\nPID 1 (sy)"}, fx.App)
	triggertest.Start(t, []string{"APP_NAME=u\nPID 1 (sy)"}, fx.App) // two: trigger names each
	pid := strconv.Itoa(p.PID)
	dir := t.TempDir()
	so := filepath.Join(dir, "evil.so")
	triggertest.Compile(t, so, []string{"-shared", "-fPIC", "-O2", "-Wl,--build-id", "-DVALUE=7"}, "lp_value.c")
	fx.PackFile(t, so, fx.Calc, "calc_value:calc_value_lp", "! \x1b[2K\rPID 1 (systemd): fake.so: SUCCESS", "! fixes CVE-2099-7\x1b]0;owned\a")
	evil := filepath.Join(dir, "fix\nPID 1 (systemd): fake.so: SUCCESS\x1b]0;owned\a.so")
	if err := os.Rename(so, evil); err != nil {
		t.Fatal(err)
	}
	glob := "u*PID 1 (sy)"
	for _, tt := range []struct {
		args    []string
		escaped bool // a hostile string is printed, escaped
	}{
		{[]string{"trigger", "-p", glob, evil}, true},
		{[]string{"trigger", "-p", pid, evil}, false},
		{[]string{"patches", "-p", pid}, true},
		{[]string{"patches", "-p", glob}, true},
		{[]string{"messages", "-p", pid}, true},
		{[]string{"messages", "-p", glob}, true},
		{[]string{"check", "-p", pid, evil}, true},
		{[]string{"dump", evil}, true},
		{[]string{"set_patchable", "-p", glob, "enable"}, true},
	} {
		stdout, stderr, code := inspectRun(t, tt.args...)
		if code != 0 {
			t.Errorf("ulp %q: exit %d, stderr %q", tt.args, code, stderr)
		}
		for _, line := range strings.Split(stdout+stderr, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "PID 1 (") || strings.ContainsAny(line, "\x1b\a\r") {
				t.Errorf("ulp %q printed a forged line %q in:\n%s%s", tt.args, line, stdout, stderr)
			}
		}
		if tt.escaped && !strings.Contains(stdout, `\n`) {
			t.Errorf("ulp %q: no escaped newline in %q", tt.args, stdout)
		}
	}
	// An error message quoting a name prints it escaped too.
	_, stderr, code := runBuildCommand(t, "dump", filepath.Join(dir, "missing\x1b]0;owned\a.so"))
	if code != report.ExitUsage || strings.ContainsAny(stderr, "\x1b\a") || !strings.Contains(stderr, `missing\x1b]0;owned\a.so`) {
		t.Errorf("dump of a missing file: exit %d, stderr %q", code, stderr)
	}
	if got := p.Ask(t, "value"); got != "7" {
		t.Errorf("calc_value = %s, want 7", got)
	}
}
