package trigger

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"ulp/livepatch/abi"
)

// TestFdRefused: a load through the agent's descriptor that the process
// may not open (it dropped its privileges after containerPath looked) is
// retried by path; every other failure is not.
func TestFdRefused(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "fix.so")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	id, err := statID(file)
	if err != nil {
		t.Fatal(err)
	}
	r := &run{pid: os.Getpid(), log: slog.New(slog.DiscardHandler), ck: &checked{id: id, viaFD: "/proc/1/fd/9", fdVisible: true}}
	r.rep.Patch = file
	denied := &callError{Op: abi.OpLoad, Result: abi.EDlopen, Msg: "/proc/1/fd/9: cannot open shared object file: Permission denied"}

	alt, ok, err := r.fdRefused("/proc/1/fd/9", denied)
	if !ok || err != nil || alt != file {
		t.Errorf("denied descriptor: %q %v %v; want %q", alt, ok, err, file)
	}
	for _, tt := range []struct {
		name string
		path string
		err  error
	}{
		{"by path already", file, denied},
		{"other dlopen error", "/proc/1/fd/9", &callError{Op: abi.OpLoad, Result: abi.EDlopen, Msg: "undefined symbol: x"}},
		{"other result", "/proc/1/fd/9", &callError{Op: abi.OpLoad, Result: abi.ENoTarget}},
		{"not a call error", "/proc/1/fd/9", errors.New("Permission denied")},
		{"success", "/proc/1/fd/9", nil},
	} {
		if _, ok, _ := r.fdRefused(tt.path, tt.err); ok {
			t.Errorf("%s: retried by path", tt.name)
		}
	}

	// Not visible by path either: an error that says so.
	r.rep.Patch = filepath.Join(dir, "elsewhere.so")
	if _, ok, err := r.fdRefused("/proc/1/fd/9", denied); !ok || err == nil {
		t.Errorf("no path to fall back to: %v %v", ok, err)
	}
}

// TestOpenContainer_FIFO: a FIFO at the container's path is refused at
// once instead of hanging the agent in open(2).
func TestOpenContainer_FIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fix.so")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	s := NewSession(Options{})
	defer s.Close()
	r := &run{req: apply(fifo), s: s, o: s.o, log: slog.New(slog.DiscardHandler)}
	done := make(chan error, 1)
	go func() { _, err := r.openContainer(); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("err = %v, want not a regular file", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("openContainer hangs on a FIFO")
	}
}
