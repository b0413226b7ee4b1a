package ptrace

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"ulp/internal/testenv"
	"ulp/livepatch/procfs"
)

var buildTarget = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "ulp-ptrace-test")
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "target")
	b, err := exec.Command("cc", "-O1", "-pthread", "-o", out, "testdata/target.c").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("cc: %v\n%s", err, b)
	}
	return out, nil
})

// target is a running test program.
type target struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Reader
	value uint64 // address of value()
}

func startTarget(t *testing.T, args ...string) *target {
	t.Helper()
	testenv.Require(t, testenv.Ptrace, testenv.CC)
	bin, err := buildTarget()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	in, outPipe := testenv.StartPiped(t, cmd)
	tg := &target{cmd: cmd, in: in, out: bufio.NewReader(outPipe)}
	line := tg.readLine(t)
	addr, ok := strings.CutPrefix(line, "ready 0x")
	if !ok {
		t.Fatalf("readiness line %q", line)
	}
	if tg.value, err = strconv.ParseUint(addr, 16, 64); err != nil {
		t.Fatal(err)
	}
	return tg
}

func (tg *target) readLine(t *testing.T) string {
	t.Helper()
	return tg.readLinePolling(t, nil)
}

// readLinePolling reads one line, calling p.Poll meanwhile when p is set
// (a seized target stopped by a signal waits for its tracer).
func (tg *target) readLinePolling(t *testing.T, p *Process) string {
	t.Helper()
	type res struct {
		s   string
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := tg.out.ReadString('\n')
		ch <- res{strings.TrimSpace(s), err}
	}()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case r := <-ch:
			if r.err != nil {
				t.Fatalf("read from target: %v", r.err)
			}
			return r.s
		case <-timeout:
			t.Fatal("target did not answer in 20s")
		case <-time.After(time.Millisecond):
			if p != nil {
				if err := p.Poll(); err != nil {
					t.Fatalf("Poll: %v", err)
				}
			}
		}
	}
}

// query asks the target for "VALUE USR1COUNT".
func (tg *target) query(t *testing.T) string {
	t.Helper()
	return tg.queryPolling(t, nil)
}

func (tg *target) queryPolling(t *testing.T, p *Process) string {
	t.Helper()
	if _, err := io.WriteString(tg.in, "q\n"); err != nil {
		t.Fatal(err)
	}
	return tg.readLinePolling(t, p)
}

func (tg *target) pid() int { return tg.cmd.Process.Pid }

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// tracers returns the TracerPid of every thread of pid that has one.
func tracers(t *testing.T, pid int) map[int]int {
	t.Helper()
	tids, err := procfs.Tasks(pid)
	if err != nil {
		t.Fatal(err)
	}
	m := map[int]int{}
	for _, tid := range tids {
		if tr := procfs.Tracer(tid); tr != 0 {
			m[tid] = tr
		}
	}
	return m
}

func seize(t *testing.T, pid int) *Process {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	p, err := Seize(ctx, pid, testLogger(t))
	if err != nil {
		t.Fatalf("Seize: %v", err)
	}
	t.Cleanup(func() { p.Detach() })
	return p
}

func TestSeize_StopWriteTextResumeDetach(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"single thread", nil},
		{"three spinning threads", []string{"3"}},
		{"churning threads", []string{"1", "2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := startTarget(t, tt.args...)
			if got := tg.query(t); got != "1 0" {
				t.Fatalf("before: %q", got)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			p := seize(t, tg.pid())
			if len(p.Threads()) == 0 {
				t.Fatal("no threads")
			}
			if err := p.StopAll(ctx); err != nil {
				t.Fatal(err)
			}
			for _, th := range p.Threads() {
				if !th.Stopped {
					t.Errorf("thread %d not stopped after StopAll", th.TID)
				}
				if _, err := p.Regs(th.TID); err != nil {
					t.Errorf("Regs(%d): %v", th.TID, err)
				}
			}
			// mov $2, %eax; ret
			if err := p.Write(tg.value, []byte{0xb8, 2, 0, 0, 0, 0xc3}); err != nil {
				t.Fatal(err)
			}
			if err := p.ResumeAll(); err != nil {
				t.Fatal(err)
			}
			if p.LastPause() <= 0 {
				t.Errorf("LastPause = %v", p.LastPause())
			}
			if err := p.Detach(); err != nil {
				t.Fatal(err)
			}
			if err := p.Detach(); err != nil {
				t.Fatalf("second Detach: %v", err)
			}
			if m := tracers(t, tg.pid()); len(m) != 0 {
				t.Fatalf("still traced after Detach: %v", m)
			}
			// The main thread was in read(2): it must go on reading.
			if got := tg.query(t); got != "2 0" {
				t.Fatalf("after: %q", got)
			}
		})
	}
}

func TestSeize_SecondTracerIsBusy(t *testing.T) {
	tg := startTarget(t, "1")
	seize(t, tg.pid())
	_, err := Seize(t.Context(), tg.pid(), nil)
	if !errors.Is(err, ErrBusy) || !errors.Is(err, unix.EPERM) {
		t.Fatalf("second Seize: %v, want ErrBusy wrapping EPERM", err)
	}
	if !strings.Contains(err.Error(), "already traced by pid") {
		t.Errorf("no advice in %q", err)
	}
}

func TestSeize_SignalsAreDelivered(t *testing.T) {
	tg := startTarget(t, "1")
	p := seize(t, tg.pid())
	for i := 1; i <= 3; i++ {
		if err := syscall.Kill(tg.pid(), syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
		// The signal-delivery-stop is handled by Poll (re-injected).
		want := fmt.Sprintf("1 %d", i)
		for deadline := time.Now().Add(10 * time.Second); ; {
			if got := tg.queryPolling(t, p); got == want {
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("after %d SIGUSR1: %q", i, got)
			}
		}
	}
	// A signal arriving while every thread is stopped is delivered after.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := p.StopAll(ctx); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(tg.pid(), syscall.SIGUSR1)
	if err := p.Detach(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if got := tg.query(t); got == "1 4" {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("after 4 SIGUSR1: %q", got)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestSeize_ProcessExit(t *testing.T) {
	tg := startTarget(t, "2")
	p := seize(t, tg.pid())
	tg.cmd.Process.Kill()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := p.Poll()
		if errors.Is(err, ErrExited) {
			break
		}
		if err != nil {
			t.Fatalf("Poll: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("exit not seen")
		}
		time.Sleep(time.Millisecond)
	}
	if err := p.StopAll(t.Context()); !errors.Is(err, ErrExited) {
		t.Fatalf("StopAll after exit: %v", err)
	}
}

func TestSeize_ContextCancelled(t *testing.T) {
	tg := startTarget(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Seize(ctx, tg.pid(), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Seize with cancelled ctx: %v", err)
	}
	if m := tracers(t, tg.pid()); len(m) != 0 {
		t.Fatalf("traced after failed Seize: %v", m)
	}
}

// TestPtrace_OtherThreadGetsESRCH shows why every request goes through the
// tracer thread: the kernel refuses a request from any other thread.
func TestPtrace_OtherThreadGetsESRCH(t *testing.T) {
	tg := startTarget(t)
	p := seize(t, tg.pid())
	if err := p.Interrupt(t.Context(), tg.pid()); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Regs(tg.pid()); err != nil {
		t.Fatalf("Regs on the tracer thread: %v", err)
	}
	ch := make(chan error)
	go func() {
		var regs Regs
		ch <- getRegs(tg.pid(), &regs) // not on the tracer thread
	}()
	if err := <-ch; !errors.Is(err, unix.ESRCH) {
		t.Fatalf("GETREGS from another thread: %v, want ESRCH", err)
	}
}

// TestWrite_AfterExec: a process that executes another program while held
// gets no write: the memory file belongs to the program that was seized.
func TestWrite_AfterExec(t *testing.T) {
	tg := startTarget(t)
	p := seize(t, tg.pid())
	if _, err := io.WriteString(tg.in, "exec\n"); err != nil {
		t.Fatal(err)
	}
	line := tg.readLinePolling(t, p)
	addr, ok := strings.CutPrefix(line, "ready 0x")
	if !ok {
		t.Fatalf("after exec: %q", line)
	}
	value, err := strconv.ParseUint(addr, 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []uint64{tg.value, value} {
		if err := p.Write(a, []byte{0xb8, 2, 0, 0, 0, 0xc3}); !errors.Is(err, ErrExited) {
			t.Errorf("write at %#x after exec: %v, want ErrExited", a, err)
		}
	}
	if err := p.Detach(); err != nil {
		t.Fatal(err)
	}
	if got := tg.query(t); got != "1 0" {
		t.Fatalf("new program: %q", got)
	}
}
