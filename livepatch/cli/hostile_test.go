package cli

import (
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

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
				if r.code != ExitUsage || !strings.Contains(r.stderr, "not a regular file ("+f.kind+")") {
					t.Errorf("exit %d, stderr %q; want %d and \"not a regular file (%s)\"", r.code, r.stderr, ExitUsage, f.kind)
				}
			})
		}
	}
	if got := p.Ask(t, "value"); got != "100" {
		t.Errorf("calc_value = %s, want 100", got)
	}
	p.Untraced(t)
}
