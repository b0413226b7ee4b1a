package trigger

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ulp/internal/testenv"
	"ulp/livepatch/procfs"
)

// proc is a test program started with the runtime preloaded.
type proc struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
	pid int
}

// compile builds a C program or library in dir from testdata sources.
func compile(t *testing.T, dir, out string, args []string, srcs ...string) string {
	t.Helper()
	path := filepath.Join(dir, out)
	abs := make([]string, len(srcs))
	for i, s := range srcs {
		abs[i] = filepath.Join(testenv.ModuleRoot(), "livepatch", "trigger", "testdata", s)
	}
	testenv.CompileC(t, path, args, abs...)
	return path
}

// start runs bin with the runtime preloaded and waits for its "ready" line.
func start(t *testing.T, env []string, bin string, args ...string) *proc {
	t.Helper()
	testenv.Require(t, testenv.Ptrace, testenv.CC)
	rt := testenv.Artifact(t, "libpulp.so.0")
	cmd := exec.Command(bin, args...)
	cmd.Env = append(append(os.Environ(), "LD_PRELOAD="+rt), env...)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	p := &proc{cmd: cmd, in: in, out: bufio.NewReader(out), pid: cmd.Process.Pid}
	if line := p.line(t); !strings.HasPrefix(line, "ready") {
		t.Fatalf("readiness line %q", line)
	}
	return p
}

// line reads one line of output, failing after 20 s.
func (p *proc) line(t *testing.T) string {
	t.Helper()
	type res struct {
		s   string
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := p.out.ReadString('\n')
		ch <- res{strings.TrimSpace(s), err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("pid %d: read: %v", p.pid, r.err)
		}
		return r.s
	case <-time.After(20 * time.Second):
		t.Fatalf("pid %d: no answer in 20s", p.pid)
	}
	return ""
}

// ask sends one line and returns the answer.
func (p *proc) ask(t *testing.T, q string) string {
	t.Helper()
	if _, err := fmt.Fprintln(p.in, q); err != nil {
		t.Fatal(err)
	}
	return p.line(t)
}

// untraced fails t if any thread of p has a tracer.
func (p *proc) untraced(t *testing.T) {
	t.Helper()
	tids, err := procfs.Tasks(p.pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, tid := range tids {
		st, err := procfs.ReadStatus(tid)
		if err != nil {
			continue
		}
		if st.TracerPid != 0 {
			t.Fatalf("thread %d of pid %d traced by %d", tid, p.pid, st.TracerPid)
		}
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}
