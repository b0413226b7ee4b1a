package trigger

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"ulp/internal/testenv"
	"ulp/livepatch/report"
	"ulp/livepatch/trigger/triggertest"
)

// copyFile copies src to dir/name and returns the new path (a new inode).
func copyFile(t *testing.T, src, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, name)
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestLoad_NameTakenByEarlierAgent: the process loaded container A
// through /proc/AGENT/fd/N; a later agent process with the same PID (here:
// this one after forgetting its held descriptors) gives container B the
// same name. The loader returns A for that name; the agent sees it (the
// mapped inode is not B's) and loads B under the next name: B's code runs.
func TestLoad_NameTakenByEarlierAgent(t *testing.T) {
	testenv.Require(t, testenv.Root, testenv.Ptrace, testenv.CC)
	fx := triggertest.Build(t)
	p := triggertest.Start(t, nil, fx.App)
	dir := t.TempDir()
	a := copyFile(t, fx.LP["lp200"], dir, "a.so")
	b := copyFile(t, fx.LP["lp300"], dir, "b.so")

	mustTrig(t, p.PID, apply(a), report.Success)
	mustTrig(t, p.PID, revert(a), report.Success)
	p.Expect(t, map[string]string{"value": "100"})
	fa, err := os.Stat(a)
	if err != nil {
		t.Fatal(err)
	}
	ida, _ := idOf(fa)

	// The new agent process: A's descriptor number now holds B.
	held.Lock()
	n := int(held.fds[ida][0].Fd())
	fb, err := os.Open(b)
	if err != nil {
		held.Unlock()
		t.Fatal(err)
	}
	if err := syscall.Dup3(int(fb.Fd()), n, syscall.O_CLOEXEC); err != nil {
		held.Unlock()
		t.Fatal(err)
	}
	fb.Close()
	st, _ := os.Stat(b)
	idb, _ := idOf(st)
	held.fds = map[fileID][]*os.File{idb: {os.NewFile(uintptr(n), b)}}
	held.Unlock()

	mustTrig(t, p.PID, apply(b), report.Success)
	p.Expect(t, map[string]string{"value": "300"})
	mustTrig(t, p.PID, revert(b), report.Success)
	p.Expect(t, map[string]string{"value": "100"})
	p.Untraced(t)
}
