package sshfleet

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"testing"
)

// harnessTB is the testing.TB that [Run] gives its function, so that a
// program (make fleet-demo, make bench) uses [Start] and the other test
// fixtures outside `go test`. Fatal and Skip end the function, as they end
// a test; Cleanup functions run when it returns, last first.
type harnessTB struct {
	testing.TB // nil: only satisfies the interface's unexported method; every method is defined below

	name string
	ctx  context.Context
	log  *slog.Logger

	mu       sync.Mutex
	cleanups []func()
	failed   bool
	skipped  bool
	msgs     []string
}

// Run runs fn outside `go test` with a testing.TB named name, then the
// cleanups fn registered (stopping the hosts of [Start], last first). It
// returns whether fn was skipped (e.g. by testenv.Require: not root, no
// sshd), and an error holding every Error and Fatal message when it failed.
// Log and Logf go to log at Debug; TempDir folders are removed at the end.
// This is the one way to start a fleet outside tests.
func Run(ctx context.Context, log *slog.Logger, name string, fn func(tb testing.TB)) (skipped bool, err error) {
	tb := &harnessTB{name: name, ctx: ctx, log: log}
	done := make(chan struct{})
	go func() { // owned: Run waits for it
		defer close(done)
		fn(tb)
	}()
	<-done
	tb.runCleanups()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if tb.failed {
		return tb.skipped, fmt.Errorf("%s: %v", name, tb.msgs)
	}
	if tb.skipped {
		return true, fmt.Errorf("%v", tb.msgs)
	}
	return false, nil
}

func (tb *harnessTB) runCleanups() {
	for {
		tb.mu.Lock()
		n := len(tb.cleanups)
		if n == 0 {
			tb.mu.Unlock()
			return
		}
		f := tb.cleanups[n-1]
		tb.cleanups = tb.cleanups[:n-1]
		tb.mu.Unlock()
		done := make(chan struct{})
		go func() { // a cleanup may call FailNow, which ends only its goroutine
			defer close(done)
			f()
		}()
		<-done
	}
}

func (tb *harnessTB) record(failed, skipped bool, msg string) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.failed = tb.failed || failed
	tb.skipped = tb.skipped || skipped
	if msg != "" {
		tb.msgs = append(tb.msgs, msg)
	}
}

func (tb *harnessTB) ArtifactDir() string    { return tb.TempDir() }
func (tb *harnessTB) Attr(key, value string) { tb.log.Debug("attr", "test", tb.name, key, value) }
func (tb *harnessTB) Cleanup(f func()) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.cleanups = append(tb.cleanups, f)
}
func (tb *harnessTB) Error(args ...any) { tb.record(true, false, fmt.Sprint(args...)) }
func (tb *harnessTB) Errorf(format string, args ...any) {
	tb.record(true, false, fmt.Sprintf(format, args...))
}
func (tb *harnessTB) Fail()    { tb.record(true, false, "") }
func (tb *harnessTB) FailNow() { tb.record(true, false, ""); runtime.Goexit() }
func (tb *harnessTB) Failed() bool {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return tb.failed
}
func (tb *harnessTB) Fatal(args ...any)                 { tb.Error(args...); runtime.Goexit() }
func (tb *harnessTB) Fatalf(format string, args ...any) { tb.Errorf(format, args...); runtime.Goexit() }
func (tb *harnessTB) Helper()                           {}
func (tb *harnessTB) Log(args ...any)                   { tb.log.Debug(fmt.Sprint(args...), "test", tb.name) }
func (tb *harnessTB) Logf(format string, args ...any) {
	tb.log.Debug(fmt.Sprintf(format, args...), "test", tb.name)
}
func (tb *harnessTB) Name() string { return tb.name }
func (tb *harnessTB) Setenv(key, value string) {
	old, had := os.LookupEnv(key)
	if err := os.Setenv(key, value); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if had {
			os.Setenv(key, old)
		} else {
			os.Unsetenv(key)
		}
	})
}
func (tb *harnessTB) Chdir(string)                     { tb.Fatal("Chdir is not supported outside go test") }
func (tb *harnessTB) Skip(args ...any)                 { tb.record(false, true, fmt.Sprint(args...)); runtime.Goexit() }
func (tb *harnessTB) SkipNow()                         { tb.record(false, true, ""); runtime.Goexit() }
func (tb *harnessTB) Skipf(format string, args ...any) { tb.Skip(fmt.Sprintf(format, args...)) }
func (tb *harnessTB) Skipped() bool {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return tb.skipped
}
func (tb *harnessTB) TempDir() string {
	d, err := os.MkdirTemp("", "ulp-"+tb.name+"-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(d) })
	return d
}
func (tb *harnessTB) Context() context.Context { return tb.ctx }
func (tb *harnessTB) Output() io.Writer        { return os.Stderr }
