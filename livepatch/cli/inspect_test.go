package cli

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"ulp/internal/testenv"
	"ulp/livepatch/abi"
	"ulp/livepatch/dsc"
	"ulp/livepatch/ledger"
	"ulp/livepatch/packer"
	"ulp/livepatch/packer/packertest"
	"ulp/livepatch/procfs"
	"ulp/livepatch/report"
	"ulp/livepatch/target"
)

// inspectRun runs the ulp command tree in this process and returns its
// stdout, stderr and exit status.
func inspectRun(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(t.Context(), args, &out, &errb)
	return out.String(), errb.String(), code
}

// holder is a running testdata/holder.c with the runtime preloaded.
type holder struct {
	pid        int
	foo, fooLP uint64
	stdin      io.Writer
	lines      chan string
}

// startHolder compiles the holder into dir and runs it; attr, when not
// nil, sets its credentials.
func startHolder(t *testing.T, dir, targetLib, livepatch string, attr *syscall.SysProcAttr) *holder {
	t.Helper()
	exe := filepath.Join(dir, "holder")
	testenv.CompileC(t, exe, []string{"-O1"}, "testdata/holder.c", "-ldl")
	cmd := exec.Command(exe, targetLib, livepatch)
	cmd.SysProcAttr = attr
	cmd.Env = append(os.Environ(), "LD_PRELOAD="+testenv.Artifact(t, "libpulp.so.0"))
	stdin, stdout := testenv.StartPiped(t, cmd)
	h := &holder{pid: cmd.Process.Pid, stdin: stdin, lines: make(chan string, 16)}
	go func() {
		defer close(h.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
	}()
	for {
		line := h.next(t)
		var p uintptr
		switch {
		case strings.HasPrefix(line, "foo_lp "):
			fmt.Sscanf(line, "foo_lp %v", &p)
			h.fooLP = uint64(p)
		case strings.HasPrefix(line, "foo "):
			fmt.Sscanf(line, "foo %v", &p)
			h.foo = uint64(p)
		case line == "ready":
			return h
		}
	}
}

func (h *holder) next(t *testing.T) string {
	t.Helper()
	select {
	case line, ok := <-h.lines:
		if !ok {
			t.Fatal("holder exited")
		}
		return line
	case <-time.After(10 * time.Second):
		t.Fatal("no output from holder in 10s")
	}
	return ""
}

// call makes the holder call foo(1) and returns what it printed.
func (h *holder) call(t *testing.T) string {
	t.Helper()
	if _, err := io.WriteString(h.stdin, "call\n"); err != nil {
		t.Fatal(err)
	}
	return h.next(t)
}

// processBlock returns the block of pid in the text output of `ulp patches`.
func processBlock(out string, pid int) string {
	for _, b := range strings.SplitAfter(out, "\n\n") {
		if strings.HasPrefix(b, fmt.Sprintf("PID: %d,", pid)) {
			return strings.TrimRight(b, "\n") + "\n"
		}
	}
	return ""
}

// pokeMem writes b at addr through /proc/PID/mem, as the trigger does.
func pokeMem(t *testing.T, pid int, addr uint64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(fmt.Sprintf("/proc/%d/mem", pid), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, int64(addr)); err != nil {
		t.Fatal(err)
	}
}

// commit performs plan on the holder the way the trigger does (code writes
// in order, then the ledger under its seqlock). The holder blocks in read()
// meanwhile, so no thread can be inside the rewritten bytes.
func commit(t *testing.T, p *target.Process, plan *ledger.Plan) {
	t.Helper()
	for _, w := range plan.Writes {
		pokeMem(t, p.PID, w.Addr, w.Data)
	}
	enc, err := ledger.Encode(plan.Ledger)
	if err != nil {
		t.Fatal(err)
	}
	_, area, err := p.ReadLedgerBytes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(enc)) > area.Cap {
		t.Fatalf("ledger of %d bytes does not fit %d", len(enc), area.Cap)
	}
	le := binary.LittleEndian
	pokeMem(t, p.PID, p.ABI+abi.OffLedgerSeq, le.AppendUint64(nil, area.Seq+1))
	pokeMem(t, p.PID, area.Addr, enc)
	pokeMem(t, p.PID, p.ABI+abi.OffLedgerLen, le.AppendUint64(nil, uint64(len(enc))))
	pokeMem(t, p.PID, p.ABI+abi.OffLedgerSeq, le.AppendUint64(nil, area.Seq+2))
}

func TestInspectCommands(t *testing.T) {
	testenv.Require(t, testenv.Ptrace)
	fx := packertest.Build(t, packertest.Options{})
	d, err := dsc.ParseFile(fx.WriteDsc(t, "lp.dsc", "! fixes bsc#1200316\nlivepatch.so\n@libtarget.so.1\nfoo:foo_lp\n"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := packer.Pack(d, packer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := startHolder(t, fx.Dir, fx.Target, res.Out, nil)
	pid := strconv.Itoa(h.pid)
	original := h.call(t)

	out, errOut, code := inspectRun(t, "check", "-p", pid, res.Out)
	if code != report.ExitFailure || !strings.Contains(out, "not applied") {
		t.Errorf("check before apply: exit %d, %q %q", code, out, errOut)
	}
	out, errOut, code = inspectRun(t, "patches", "-p", pid)
	runtime := testenv.Artifact(t, "libpulp.so.0")
	libc := libcPath(t, h.pid)
	if code != report.ExitOK || strings.Contains(out, "livepatch:") {
		t.Errorf("patches before apply: exit %d\n%s%s", code, out, errOut)
	}
	checkLibs(t, listedLibs(t, out, h.pid), []string{fx.Target, libc}, runtime)
	if out, errOut, code := inspectRun(t, "patches", "--only-livepatched", "-p", pid); code != report.ExitOK || out != "" {
		t.Errorf("patches --only-livepatched before apply: exit %d, %q %q", code, out, errOut)
	}

	// Apply foo -> foo_lp with the ledger's plan, on the real code.
	p, err := target.Open(h.pid)
	if err != nil {
		t.Fatal(err)
	}
	l, err := p.ReadLedger(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	spec := res.Apply
	lib := p.Object(spec.Target.Name)
	if lib == nil || lib.Bias+spec.Funcs[0].OldOffset != h.foo {
		t.Fatalf("target object %+v does not put foo at %#x", lib, h.foo)
	}
	appliedAt := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	plan, err := ledger.Apply(l, ledger.Patch{
		ID: spec.ID, Container: res.Out, Target: spec.Target.Name, BuildID: spec.Target.BuildID,
		AppliedAt: appliedAt, Labels: spec.Labels,
		Redirects: []ledger.Redirect{{Old: h.foo, New: h.fooLP}},
	}, procfs.Mem{PID: h.pid})
	if err != nil {
		t.Fatal(err)
	}
	commit(t, p, plan)
	if got := h.call(t); got != "1001" {
		t.Fatalf("foo(1) after apply = %s, want 1001 (was %s)", got, original)
	}

	out, _, code = inspectRun(t, "check", "-p", pid, res.Out)
	if code != report.ExitOK || !strings.HasSuffix(out, "livepatch.so applied\n") {
		t.Errorf("check after apply: exit %d, %q", code, out)
	}
	if out, _, code = inspectRun(t, "-q", "check", "-p", pid, res.Out); code != report.ExitOK || out != "" {
		t.Errorf("check -q: exit %d, %q", code, out)
	}
	out, _, code = inspectRun(t, "patches", "-p", "hold*")
	want := fmt.Sprintf("    in %s:\n      livepatch: livepatch.so loaded on %s\n        bug labels: bsc#1200316\n",
		fx.Target, appliedAt.Local().Format("2006-01-02 15:04:05 MST"))
	// Other processes may match the glob: find this one's block.
	if block := processBlock(out, h.pid); code != report.ExitOK || !strings.Contains(block, want) {
		t.Errorf("patches after apply: exit %d\n got %q\nwant it to hold %q", code, block, want)
	}
	checkLibs(t, listedLibs(t, processBlock(out, h.pid), h.pid), []string{fx.Target, libc}, runtime, res.Out)
	if out, _, code := inspectRun(t, "patches", "--only-livepatched", "-p", pid); code != report.ExitOK || !strings.Contains(out, want) {
		t.Errorf("patches --only-livepatched after apply: exit %d, %q", code, out)
	}
	out, _, code = inspectRun(t, "patches", "-p", pid, "--json")
	rec, err := onePatched(out)
	if err != nil || code != report.ExitOK {
		t.Fatalf("patches --json: exit %d, %v: %q", code, err, out)
	}
	if sum := lastLine(out); !strings.Contains(sum, `"type":"summary","processes":1,"failed":0,"inaccessible":0`) {
		t.Errorf("patches --json summary: %q", sum)
	}
	wantRec := report.AppliedPatch{ID: hex.EncodeToString(spec.ID[:]), Container: res.Out, Target: "libtarget.so.1",
		AppliedAt: appliedAt, Labels: []string{"bsc#1200316"}, Functions: 1}
	if rec.Schema != report.PatchesSchema || rec.PID != h.pid || rec.Comm != "holder" || len(rec.Patches) != 1 ||
		fmt.Sprint(rec.Patches[0]) != fmt.Sprint(wantRec) || !slices.Contains(rec.Libraries, fx.Target) ||
		!slices.Contains(rec.Libraries, libc) || slices.Contains(rec.Libraries, runtime) ||
		rec.Status != report.StatusEnabled || rec.StatusReason != "" {
		t.Errorf("patches --json = %+v\nwant patch %+v", rec, wantRec)
	}

	// Revert: the original code comes back and check says "not applied".
	if l, err = p.ReadLedger(t.Context()); err != nil {
		t.Fatal(err)
	}
	if plan, err = ledger.Revert(l, spec.ID, procfs.Mem{PID: h.pid}); err != nil {
		t.Fatal(err)
	}
	commit(t, p, plan)
	if got := h.call(t); got != original {
		t.Errorf("foo(1) after revert = %s, want %s", got, original)
	}
	if _, _, code = inspectRun(t, "check", "-p", pid, res.Out); code != report.ExitFailure {
		t.Errorf("check after revert: exit %d", code)
	}

	// The same through the real trigger: what it records, patches and
	// check read back, and messages shows its log lines.
	if out, errOut, code = inspectRun(t, "trigger", "-p", pid, res.Out); code != report.ExitOK || out != "SUCCESS\n" {
		t.Fatalf("trigger: exit %d, %q %q", code, out, errOut)
	}
	if got := h.call(t); got != "1001" {
		t.Errorf("foo(1) after trigger = %s, want 1001", got)
	}
	if out, _, code = inspectRun(t, "check", "-p", pid, res.Out); code != report.ExitOK {
		t.Errorf("check after trigger: exit %d, %q", code, out)
	}
	out, _, _ = inspectRun(t, "patches", "-p", pid)
	if !strings.Contains(out, "      livepatch: livepatch.so loaded on ") || !strings.Contains(out, "        bug labels: bsc#1200316\n") {
		t.Errorf("patches after trigger: %q", out)
	}
	if out, errOut, code = inspectRun(t, "trigger", "-p", pid, "--revert", res.Out); code != report.ExitOK || out != "SUCCESS\n" {
		t.Fatalf("trigger --revert: exit %d, %q %q", code, out, errOut)
	}
	if got := h.call(t); got != original {
		t.Errorf("foo(1) after trigger --revert = %s, want %s", got, original)
	}

	out, _, code = inspectRun(t, "messages", "-p", pid)
	if code != report.ExitOK || !strings.Contains(out, "libpulp loaded") || !strings.Contains(out, "reverted") {
		t.Errorf("messages: exit %d, %q", code, out)
	}
	out, _, code = inspectRun(t, "messages", "-p", pid, "--json")
	var msgs report.ProcessMessages
	if all, err := report.ParseMessages([]byte(out)); err == nil && len(all) == 1 {
		msgs = all[0]
	}
	if sum := lastLine(out); code != report.ExitOK || msgs.Schema != report.MessagesSchema || !strings.Contains(sum, `"type":"summary","processes":1`) ||
		strconv.Itoa(msgs.PID) != pid || msgs.Comm == "" || len(msgs.Messages) == 0 || !strings.HasPrefix(msgs.Messages[0], "libpulp loaded") {
		t.Errorf("messages --json: exit %d, %q", code, out)
	}
	// A glob selects by name: a block per process.
	out, _, code = inspectRun(t, "messages", "-p", msgs.Comm)
	if code != report.ExitOK || !strings.Contains(out, pid+" ("+msgs.Comm+"):\n  libpulp loaded") {
		t.Errorf("messages -p %s: exit %d, %q", msgs.Comm, code, out)
	}

	// Patching disabled at run time: the status says so, and why.
	if out, errOut, code = inspectRun(t, "set_patchable", "-p", pid, "disable"); code != report.ExitOK {
		t.Fatalf("set_patchable disable: exit %d, %q %q", code, out, errOut)
	}
	out, _, _ = inspectRun(t, "patches", "-p", pid, "--json")
	if rec, err = onePatched(out); err != nil || rec.Status != report.StatusDisabled ||
		!strings.HasPrefix(rec.StatusReason, "disabled at run time") {
		t.Errorf("patches --json after set_patchable disable: %v, %q", err, out)
	}
	if out, _, _ = inspectRun(t, "patches", "-p", pid); !strings.Contains(out, "  Livepatching status: disabled at run time") {
		t.Errorf("patches after set_patchable disable: %q", out)
	}
}

func TestInspectErrors(t *testing.T) {
	sleeper := exec.Command("sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	noRuntime := strconv.Itoa(sleeper.Process.Pid)
	// Until it execs, the child is a copy of this test process and its maps.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if comm, _ := os.ReadFile("/proc/" + noRuntime + "/comm"); string(comm) == "sleep\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("sleep did not exec in 10s")
		}
	}
	missing := filepath.Join(t.TempDir(), "missing.so")

	tests := []struct {
		args     []string
		code     int
		inStdout string
		inStderr string
	}{
		{[]string{"patches", "-p", noRuntime}, report.ExitFailure, "libpulp.so.0 not loaded in process (start it with LD_PRELOAD", ""},
		{[]string{"patches", "-p", "["}, report.ExitUsage, "", "bad process selector"},
		{[]string{"patches", "extra"}, report.ExitUsage, "", ""},
		{[]string{"check", "-p", noRuntime, missing}, report.ExitUsage, "", "missing.so"},
		{[]string{"check", missing}, report.ExitUsage, "", "needs -p PID"},
		{[]string{"check", "-p", "x", missing}, report.ExitUsage, "", ""},
		{[]string{"messages", "-p", noRuntime}, report.ExitFailure, "", "not loaded"},
		{[]string{"messages"}, report.ExitUsage, "", "needs -p PID"},
		{[]string{"messages", "-p", "0"}, report.ExitUsage, "", "bad process selector: pid 0"},
		{[]string{"messages", "-p", noRuntime, "--json"}, report.ExitFailure, `libpulp.so.0 not loaded in process`, ""},
		{[]string{"messages", "-p", "["}, report.ExitUsage, "", "bad process selector"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, errOut, code := inspectRun(t, tt.args...)
			if code != tt.code || !strings.Contains(out, tt.inStdout) || !strings.Contains(errOut, tt.inStderr) {
				t.Errorf("exit %d (want %d)\nstdout %q (want %q)\nstderr %q (want %q)", code, tt.code, out, tt.inStdout, errOut, tt.inStderr)
			}
		})
	}
}

// TestPatchesPermission runs `ulp patches` as nobody against a root
// process with the runtime: named by its PID, the process is reported with
// the reason and the exit status is 1, no crash; selected by a glob, it is
// out of nobody's reach and left out, and the glob matches nothing.
func TestPatchesPermission(t *testing.T) {
	testenv.Require(t, testenv.Root, testenv.CC)
	fx := packertest.Build(t, packertest.Options{})
	h := startHolder(t, fx.Dir, fx.Target, fx.Livepatch, nil)
	bin := nobodyTestBinary(t)
	args := []string{"patches", "-p", strconv.Itoa(h.pid)}
	out, err := runAsNobody(t, bin, args...)
	var ee *exec.ExitError
	if !errorsAs(err, &ee) || ee.ExitCode() != report.ExitFailure {
		t.Errorf("%v as nobody: %v, want exit status 1\n%s", args, err, out)
	}
	want := fmt.Sprintf("PID: %d, name: holder\n  error: cannot read process:", h.pid)
	if !strings.HasPrefix(string(out), want) || !strings.Contains(string(out), "permission denied") {
		t.Errorf("%v as nobody printed %q, want it to start with %q", args, out, want)
	}
	args = []string{"patches", "-p", "holder"}
	out, err = runAsNobody(t, bin, args...)
	if !errorsAs(err, &ee) || ee.ExitCode() != report.ExitFailure || strings.Contains(string(out), fmt.Sprintf("PID: %d,", h.pid)) {
		t.Errorf("%v as nobody: %v, want exit status 1 and no match\n%s", args, err, out)
	}
}

// TestPatchesAsOwner runs `ulp patches` and `check` as nobody against a
// process of nobody: an unprivileged owner reads its own processes.
func TestPatchesAsOwner(t *testing.T) {
	testenv.Require(t, testenv.Root, testenv.CC)
	fx := packertest.Build(t, packertest.Options{})
	dir := worldDir(t)
	lib, lp := filepath.Join(dir, "libtarget.so.1"), filepath.Join(dir, "livepatch.so")
	copyFile(t, fx.Target, lib)
	copyFile(t, fx.Livepatch, lp)
	h := startHolder(t, dir, lib, lp, asNobody())
	bin := nobodyTestBinary(t)
	out, err := runAsNobody(t, bin, "patches", "-p", strconv.Itoa(h.pid))
	if err != nil {
		t.Fatalf("patches as the owner: %v\n%s", err, out)
	}
	checkLibs(t, listedLibs(t, string(out), h.pid), []string{lib, libcPath(t, h.pid)}, testenv.Artifact(t, "libpulp.so.0"))
}

// worldDir returns a new folder every user may read, removed at cleanup.
func worldDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ulp-inspect-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// nobodyTestBinary copies this test binary where nobody may run it.
func nobodyTestBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(worldDir(t), "cli.test")
	copyFile(t, os.Args[0], bin)
	return bin
}

// runAsNobody runs `ulp ARGS` as nobody through TestInspectHelper and
// returns its stdout.
func runAsNobody(t *testing.T, bin string, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(bin, "-test.run=^TestInspectHelper$")
	cmd.Env = append(os.Environ(), "ULP_INSPECT_HELPER_ARGS="+strings.Join(args, "\x1f"))
	cmd.SysProcAttr = asNobody()
	cmd.Stderr = os.Stderr
	return cmd.Output()
}

// TestInspectHelper is the body of the helper process of
// TestPatchesPermission: it runs ulp with the arguments in the environment.
func TestInspectHelper(t *testing.T) {
	args := os.Getenv("ULP_INSPECT_HELPER_ARGS")
	if args == "" {
		return // only meaningful as the helper process of TestPatchesPermission
	}
	os.Exit(Run(strings.Split(args, "\x1f")))
}

// listedLibs returns the libraries of the one process block out (of
// `ulp patches`), after checking its heading.
func listedLibs(t *testing.T, out string, pid int) []string {
	t.Helper()
	return listedLibsOf(t, out, pid, "holder")
}

// listedLibsOf is listedLibs for a process named comm.
func listedLibsOf(t *testing.T, out string, pid int, comm string) []string {
	t.Helper()
	head := fmt.Sprintf("PID: %d, name: %s\n  Livepatchable libraries:\n", pid, comm)
	if !strings.HasPrefix(out, head) {
		t.Fatalf("patches block %q does not start with %q", out, head)
	}
	var libs []string
	for line := range strings.Lines(out) {
		if lib, ok := strings.CutPrefix(line, "    in "); ok {
			libs = append(libs, strings.TrimSuffix(lib, ":\n"))
		}
	}
	return libs
}

// checkLibs checks that the libraries listed hold want and none of not
// (the runtime, a loaded container).
func checkLibs(t *testing.T, libs, want []string, not ...string) {
	t.Helper()
	for _, w := range want {
		if !slices.Contains(libs, w) {
			t.Errorf("livepatchable libraries %q lack %s", libs, w)
		}
	}
	for _, n := range not {
		if slices.Contains(libs, n) {
			t.Errorf("livepatchable libraries %q list %s", libs, n)
		}
	}
}

// libcPath is the path of the C library process pid maps: Debian's, built
// without the pad, takes the entry mechanism.
func libcPath(t *testing.T, pid int) string {
	t.Helper()
	p, err := target.Inspect(pid)
	if err != nil {
		t.Fatal(err)
	}
	o := p.Object("libc.so.6")
	if o == nil {
		t.Fatalf("process %d maps no libc.so.6", pid)
	}
	return o.Path
}

// onePatched decodes `ulp patches --json` output of one process.
func onePatched(out string) (report.PatchedProcess, error) {
	procs, err := report.ParsePatches([]byte(out))
	if err == nil && len(procs) != 1 {
		err = fmt.Errorf("%d process records, want 1", len(procs))
	}
	if err != nil {
		return report.PatchedProcess{}, err
	}
	return procs[0], nil
}

// lastLine is the last line of out.
func lastLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return lines[len(lines)-1]
}
