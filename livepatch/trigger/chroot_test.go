package trigger

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"ulp/internal/testenv"
	"ulp/livepatch/report"
	"ulp/livepatch/trigger/triggertest"
)

// TestChrootedTarget patches a process chrooted into a minimal root that
// holds only the program, its libraries and the runtime, each at its host
// path. The container, outside that root, is reached three ways: not at
// all (a clear ERROR), through a hard link at the same path inside the
// root, and through the agent's descriptor once /proc is mounted inside
// (refused, with the reason, to a chrooted process of another user).
func TestChrootedTarget(t *testing.T) {
	testenv.Require(t, testenv.Root, testenv.Ptrace, testenv.CC)
	fx := triggertest.Build(t)
	rt := testenv.Artifact(t, "libpulp.so.0")
	root := t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range append([]string{fx.App, fx.Calc, fx.Two, rt}, sharedLibs(t, fx.App, rt)...) {
		mirror(t, root, f)
	}
	p := triggertest.StartPlain(t, []string{"LD_PRELOAD=" + rt}, "/usr/sbin/chroot", root, fx.App)
	if got, err := os.Readlink(filepath.Join("/proc", itoa(p.PID), "root")); err != nil || got != root {
		t.Fatalf("target root %q, %v; want %s", got, err, root)
	}
	p.Expect(t, map[string]string{"value": "100"})

	rep := mustTrig(t, p.PID, apply(fx.LP["lp200"]), report.Error)
	if !strings.Contains(rep.Reason, "is not visible in the root of process") || !strings.Contains(rep.Reason, "mount /proc there") {
		t.Errorf("reason %q does not say why", rep.Reason)
	}
	p.Expect(t, map[string]string{"value": "100"})

	// The same file under a prefix inside the root, named by -R.
	snap := filepath.Join(root, "snap", fx.LP["lp200"])
	if err := os.MkdirAll(filepath.Dir(snap), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(fx.LP["lp200"], snap); err != nil {
		t.Fatal(err)
	}
	for _, req := range []Request{apply(fx.LP["lp200"]), revert(fx.LP["lp200"])} {
		rep := Run(t.Context(), p.PID, req, Options{Retries: 100, Log: triggertest.Logger(t), RootPrefix: "/snap"})
		if rep.Result != report.Success {
			t.Fatalf("%s with RootPrefix /snap: %s %s", req.Action, rep.Result, rep.Reason)
		}
		p.Expect(t, map[string]string{"value": map[report.Action]string{report.Apply: "200", report.Revert: "100"}[req.Action]})
	}
	if msgs := ring(t, p.PID); !strings.Contains(msgs, "load /snap"+fx.LP["lp200"]) {
		t.Errorf("the process did not load the container under /snap:\n%s", msgs)
	}
	if err := os.Remove(snap); err != nil {
		t.Fatal(err)
	}

	// The same file at the same path inside the root.
	inside := filepath.Join(root, fx.LP["lp200"])
	if err := os.Link(fx.LP["lp200"], inside); err != nil {
		t.Fatal(err)
	}
	mustTrig(t, p.PID, apply(fx.LP["lp200"]), report.Success)
	p.Expect(t, map[string]string{"value": "200"})
	mustTrig(t, p.PID, revert(fx.LP["lp200"]), report.Success)
	p.Expect(t, map[string]string{"value": "100"})

	// /proc inside the root: the process opens the agent's descriptor.
	proc := filepath.Join(root, "proc")
	if err := os.Mkdir(proc, 0o555); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("proc", proc, "proc", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, ""); err != nil {
		t.Fatalf("mount proc: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(proc, syscall.MNT_DETACH) })
	mustTrig(t, p.PID, apply(fx.LP["lp300"]), report.Success)
	p.Expect(t, map[string]string{"value": "300"})
	mustTrig(t, p.PID, revert(fx.LP["lp300"]), report.Success)
	p.Expect(t, map[string]string{"value": "100"})
	p.Untraced(t)

	// A chrooted process of another user may not open root's descriptor:
	// ERROR saying so; the container at the same path inside still works.
	q := triggertest.StartPlain(t, []string{"LD_PRELOAD=" + rt}, "/usr/sbin/chroot", "--userspec=65534:65534", root, fx.App)
	rep = mustTrig(t, q.PID, apply(fx.LP["lp300"]), report.Error)
	if !strings.Contains(rep.Reason, "(uid 65534) may not open it through /proc/") {
		t.Errorf("reason %q does not say why", rep.Reason)
	}
	mustTrig(t, q.PID, apply(fx.LP["lp200"]), report.Success)
	q.Expect(t, map[string]string{"value": "200"})
}

// sharedLibs lists the libraries (and the loader) that bins need, by ldd.
func sharedLibs(t *testing.T, bins ...string) []string {
	t.Helper()
	var out []string
	for _, bin := range bins {
		b, err := exec.Command("ldd", bin).Output()
		if err != nil {
			t.Fatalf("ldd %s: %v", bin, err)
		}
		for line := range strings.Lines(string(b)) {
			for _, f := range strings.Fields(line) {
				if strings.HasPrefix(f, "/") {
					out = append(out, f)
				}
			}
		}
	}
	return out
}

// mirror copies the file at host path f to the same path under root.
func mirror(t *testing.T, root, f string) {
	t.Helper()
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(root, f)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestMountNamespaceTarget patches a process in its own mount namespace,
// where a tmpfs hides the folder of the container: it opens the container
// through the agent's descriptor.
func TestMountNamespaceTarget(t *testing.T) {
	testenv.Require(t, testenv.Root, testenv.Ptrace, testenv.CC)
	fx := triggertest.Build(t)
	hidden := t.TempDir()
	lp := filepath.Join(hidden, "lp200.so")
	b, err := os.ReadFile(fx.LP["lp200"])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	rt := testenv.Artifact(t, "libpulp.so.0")
	p := triggertest.StartPlain(t, []string{"LD_PRELOAD=" + rt}, "unshare", "--mount", "--propagation", "private",
		"sh", "-c", `mount -t tmpfs none "$0" && exec "$1"`, hidden, fx.App)
	if _, err := os.Stat(filepath.Join("/proc", itoa(p.PID), "root", lp)); err == nil {
		t.Fatalf("%s still visible in the process's mount namespace", lp)
	}
	mustTrig(t, p.PID, apply(lp), report.Success)
	p.Expect(t, map[string]string{"value": "200"})
	mustTrig(t, p.PID, revert(lp), report.Success)
	p.Expect(t, map[string]string{"value": "100"})
}
