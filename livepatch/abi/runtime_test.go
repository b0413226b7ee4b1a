package abi

// Runtime tests: real processes started with LD_PRELOAD=build/libpulp.so.0,
// read through /proc/PID/mem, and hijacked with a minimal ptrace injector
// that follows the protocol of ulp_abi.h (SEIZE, INTERRUPT, request on the
// thread's stack, RIP = entry, detach, poll call.state).

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"ulp/internal/testenv"
)

var fixtureState struct {
	once sync.Once
	dir  string
	err  error
}

// fixtures compiles the C programs of testdata/ once per test binary and
// returns the folder holding them.
func fixtures(t testing.TB) string {
	t.Helper()
	testenv.Require(t, testenv.CC)
	f := &fixtureState
	f.once.Do(func() {
		f.dir, f.err = os.MkdirTemp("", "ulp-abi-test-")
		if f.err != nil {
			return
		}
		for _, b := range []struct {
			out  string
			args []string
			src  string
		}{
			{"target", []string{"-O2", "-pthread"}, "target.c"},
			{"slowmalloc.so", []string{"-shared", "-fPIC"}, "slowmalloc.c"},
			{"blockctor.so", []string{"-shared", "-fPIC"}, "blockctor.c"},
			{"container.so", []string{"-shared", "-fPIC"}, "container.c"},
			{"bigctor.so", []string{"-shared", "-fPIC"}, "bigctor.c"},
			{"errnoctor.so", []string{"-shared", "-fPIC"}, "errnoctor.c"},
			{"raisector.so", []string{"-shared", "-fPIC"}, "raisector.c"},
			{"libearly.so", []string{"-shared", "-fPIC"}, "early.c"},
			{"simple", []string{"-O2", "-L" + f.dir, "-Wl,-rpath," + f.dir, "-Wl,--no-as-needed"}, "simple.c"},
			{"simple-static", []string{"-O2", "-static"}, "simple.c"},
			{"mallocbench", []string{"-O2"}, "mallocbench.c"},
			{"bump.so", []string{"-shared", "-fPIC", "-O2"}, "bump.c"},
			{"plugins/libplug.so", []string{"-shared", "-fPIC"}, "plug.c"},
			{"libloader.so", []string{"-shared", "-fPIC", "-Wl,--enable-new-dtags,-rpath,$ORIGIN/plugins"}, "loader.c"},
			{"loadermain", []string{"-L" + f.dir, "-Wl,-rpath," + f.dir}, "loadermain.c"},
		} {
			args := append([]string{"-Wall", "-Werror", "-o", filepath.Join(f.dir, b.out)}, b.args...)
			args = append(args, filepath.Join("testdata", b.src))
			switch b.out { // libraries come after the source
			case "simple":
				args = append(args, "-learly")
			case "loadermain":
				args = append(args, "-lloader")
			}
			if err := os.MkdirAll(filepath.Dir(filepath.Join(f.dir, b.out)), 0o755); err != nil {
				f.err = err
				return
			}
			if out, err := exec.Command("cc", args...).CombinedOutput(); err != nil {
				f.err = fmt.Errorf("cc %s: %v\n%s", strings.Join(args, " "), err, out)
				return
			}
		}
		f.err = os.Chmod(f.dir, 0o755)
	})
	if f.err != nil {
		t.Fatal(f.err)
	}
	return f.dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fixtureState.dir != "" {
		os.RemoveAll(fixtureState.dir)
	}
	os.Exit(code)
}

// target is a running test program.
type target struct {
	cmd   *exec.Cmd
	pid   int
	stdin io.WriteCloser
	lines chan string
	seen  []string // lines read but not yet expected
}

// start runs path with args under env (plus the inherited environment) and
// waits for its "ready" line. The process is killed and reaped at cleanup.
func start(t *testing.T, env []string, path string, args ...string) *target {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tg := &target{cmd: cmd, pid: cmd.Process.Pid, stdin: stdin, lines: make(chan string, 100)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(tg.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			tg.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		cmd.Wait()
	})
	tg.expect(t, "ready")
	return tg
}

// expect waits (at most 10 s) for a line starting with prefix and returns
// the rest of it; lines that came first stay for later expects.
func (tg *target) expect(t *testing.T, prefix string) string {
	t.Helper()
	for i, l := range tg.seen {
		if rest, found := strings.CutPrefix(l, prefix); found {
			tg.seen = append(tg.seen[:i], tg.seen[i+1:]...)
			return strings.TrimSpace(rest)
		}
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case l, ok := <-tg.lines:
			if !ok {
				t.Fatalf("pid %d: output ended before %q", tg.pid, prefix)
			}
			if rest, found := strings.CutPrefix(l, prefix); found {
				return strings.TrimSpace(rest)
			}
			tg.seen = append(tg.seen, l)
		case <-timeout:
			t.Fatalf("pid %d: no %q line within 10s (got %q)", tg.pid, prefix, tg.seen)
		}
	}
}

// libpulpBase returns the load address of libpulp.so.0 in pid and the path
// it was mapped from, or 0 when it is not mapped.
func libpulpBase(t *testing.T, pid int) (uint64, string) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 6 || filepath.Base(f[5]) != "libpulp.so.0" || f[2] != "00000000" {
			continue
		}
		lo, _, _ := strings.Cut(f[0], "-")
		base, err := strconv.ParseUint(lo, 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		return base, f[5]
	}
	return 0, ""
}

// abiAddr locates ulp_abi in pid through the runtime's .dynsym.
func abiAddr(t *testing.T, pid int) uint64 {
	t.Helper()
	base, path := libpulpBase(t, pid)
	if base == 0 {
		t.Fatalf("pid %d does not map libpulp.so.0", pid)
	}
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.DynamicSymbols()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range syms {
		if s.Name == Symbol {
			return base + s.Value
		}
	}
	t.Fatalf("%s has no %s symbol", path, Symbol)
	return 0
}

func readMem(t *testing.T, pid int, addr uint64, n int) []byte {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, int64(addr)); err != nil {
		t.Fatalf("read %d bytes at %#x: %v", n, addr, err)
	}
	return b
}

func writeMem(t *testing.T, pid int, addr uint64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(fmt.Sprintf("/proc/%d/mem", pid), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, int64(addr)); err != nil {
		t.Fatalf("write %d bytes at %#x: %v", len(b), addr, err)
	}
}

func readBlock(t *testing.T, pid int) *Block {
	t.Helper()
	blk, err := DecodeBlock(readMem(t, pid, abiAddr(t, pid), BlockSize))
	if err != nil {
		t.Fatal(err)
	}
	return blk
}

// Kernel constants (include/uapi/linux/ptrace.h, include/linux/errno.h).
const (
	ptraceSeize      = 0x4206
	ptraceInterrupt  = 0x4207
	errRestartSys    = 512
	errRestartNoIntr = 513
	errRestartNoHand = 514
	errRestartBlock  = 516
	nrRestartSyscall = 219
)

var callID struct {
	sync.Mutex
	n uint64
}

// call hijacks thread tid of pid to run req in the runtime and returns the
// result once the runtime publishes it. The thread runs the call after the
// injector has detached, as with the real agent.
func call(t *testing.T, pid, tid int, req *Request) *Call {
	t.Helper()
	callID.Lock()
	callID.n++
	req.ID = uint64(pid)<<32 | callID.n
	callID.Unlock()
	addr := abiAddr(t, pid)
	blk := readBlock(t, pid)
	hijack(t, pid, tid, blk.Entry, req)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := DecodeCall(readMem(t, pid, addr+OffCall, CallSize))
		if err != nil {
			t.Fatal(err)
		}
		if c.State == CallDone && c.ID == req.ID {
			writeMem(t, pid, addr+OffCallState, []byte{byte(CallIdle), 0, 0, 0})
			return c
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("call %d on thread %d: no result within 10s", req.ID, tid)
	return nil
}

func hijack(t *testing.T, pid, tid int, entry uint64, req *Request) {
	t.Helper()
	runtime.LockOSThread() // every ptrace call of one tracee from one thread
	defer runtime.UnlockOSThread()
	if _, _, e := syscall.Syscall6(syscall.SYS_PTRACE, ptraceSeize, uintptr(tid), 0, 0, 0, 0); e != 0 {
		t.Fatalf("PTRACE_SEIZE %d: %v", tid, e)
	}
	detached := false
	defer func() {
		if !detached {
			syscall.PtraceDetach(tid)
		}
	}()
	if _, _, e := syscall.Syscall6(syscall.SYS_PTRACE, ptraceInterrupt, uintptr(tid), 0, 0, 0, 0); e != 0 {
		t.Fatalf("PTRACE_INTERRUPT %d: %v", tid, e)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		var ws syscall.WaitStatus
		wpid, err := syscall.Wait4(tid, &ws, syscall.WALL|syscall.WNOHANG, nil)
		if err != nil {
			t.Fatalf("wait4 %d: %v", tid, err)
		}
		if wpid == tid && ws.Stopped() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("thread %d did not stop", tid)
		}
		time.Sleep(100 * time.Microsecond)
	}
	var regs syscall.PtraceRegs
	if err := syscall.PtraceGetRegs(tid, &regs); err != nil {
		t.Fatal(err)
	}
	req.GPR = [NumGPR]uint64{regs.R15, regs.R14, regs.R13, regs.R12, regs.Rbp, regs.Rbx, regs.R11,
		regs.R10, regs.R9, regs.R8, regs.Rax, regs.Rcx, regs.Rdx, regs.Rsi, regs.Rdi}
	req.Iret = [NumIret]uint64{regs.Rip, regs.Cs, regs.Eflags, regs.Rsp, regs.Ss}
	switch -int64(regs.Rax) { // stopped inside a restartable system call
	case errRestartSys, errRestartNoIntr, errRestartNoHand:
		req.Iret[IretRIP] -= 2
		req.GPR[RAX] = regs.Orig_rax
	case errRestartBlock:
		req.Iret[IretRIP] -= 2
		req.GPR[RAX] = nrRestartSyscall
	}
	at := (regs.Rsp - 128 - RequestSize) &^ 63
	writeMem(t, pid, at, req.Marshal())
	regs.Rip = entry
	regs.Rdi = at
	regs.Rsp = at
	regs.Orig_rax = ^uint64(0)
	if err := syscall.PtraceSetRegs(tid, &regs); err != nil {
		t.Fatal(err)
	}
	if err := syscall.PtraceDetach(tid); err != nil {
		t.Fatal(err)
	}
	detached = true
}

func preload(t *testing.T) string {
	return "LD_PRELOAD=" + testenv.Artifact(t, "libpulp.so.0")
}

func TestBlockInProcess(t *testing.T) {
	testenv.Require(t, testenv.Root)
	dir := fixtures(t)
	before := time.Now().Unix()
	tg := start(t, []string{preload(t)}, filepath.Join(dir, "target"), "echo")
	blk := readBlock(t, tg.pid)
	if blk.State != StateReady || String(blk.Reason[:]) != "" {
		t.Errorf("state %v reason %q, want ready", blk.State, String(blk.Reason[:]))
	}
	if v := String(blk.VersionStr[:]); v == "" {
		t.Error("empty version_str")
	}
	if blk.LedgerCap != StaticLedgerSize || blk.Ledger == 0 || blk.LedgerLen != 0 || blk.LedgerSeq != 0 {
		t.Errorf("ledger %#x cap %d len %d seq %d", blk.Ledger, blk.LedgerCap, blk.LedgerLen, blk.LedgerSeq)
	}
	if la := int64(blk.LoadedAt); la < before-1 || la > time.Now().Unix()+1 {
		t.Errorf("loaded_at %d, started at %d", la, before)
	}
	if txt := blk.Ring.Text(); !strings.HasPrefix(txt, "libpulp loaded") || blk.Ring.Seq%2 != 0 {
		t.Errorf("ring seq %d text %q", blk.Ring.Seq, txt)
	}
	base, _ := libpulpBase(t, tg.pid)
	if blk.Entry < base || blk.Entry > base+1<<20 {
		t.Errorf("entry %#x outside the runtime mapped at %#x", blk.Entry, base)
	}
}

func TestOptOut(t *testing.T) {
	testenv.Require(t, testenv.Root)
	dir := fixtures(t)
	exe := filepath.Join(dir, "target")
	for _, c := range []struct {
		name, env, reason string
	}{
		{"path", "LIBPULP_DISABLE_ON_PATH=/nope/*:" + dir + "/tar*", "LIBPULP_DISABLE_ON_PATH matched " + dir + "/tar*"},
		{"path extglob", "LIBPULP_DISABLE_ON_PATH=*/@(target|other)", "LIBPULP_DISABLE_ON_PATH matched */@(target|other)"},
		{"user name", "LIBPULP_DISABLE_ON_USERS=nobody:ro?t", "LIBPULP_DISABLE_ON_USERS matched ro?t"},
		{"uid", "LIBPULP_DISABLE_ON_USERS=1000:0", "LIBPULP_DISABLE_ON_USERS matched 0"},
		{"group", "LIBPULP_DISABLE_ON_GROUPS=root", "LIBPULP_DISABLE_ON_GROUPS matched root"},
		{"gid", "LIBPULP_DISABLE_ON_GROUPS=4242:0", "LIBPULP_DISABLE_ON_GROUPS matched 0"},
		{"no match", "LIBPULP_DISABLE_ON_PATH=/usr/*:*/other", ""},
		{"empty", "LIBPULP_DISABLE_ON_USERS=", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			tg := start(t, []string{preload(t), c.env}, exe, "echo")
			blk := readBlock(t, tg.pid)
			want := StateUserOff
			if c.reason == "" {
				want = StateReady
			}
			if blk.State != want || String(blk.Reason[:]) != c.reason {
				t.Errorf("state %v reason %q, want %v %q", blk.State, String(blk.Reason[:]), want, c.reason)
			}
			if c.reason != "" && !strings.Contains(blk.Ring.Text(), "patching disabled: "+c.reason) {
				t.Errorf("ring %q lacks the reason", blk.Ring.Text())
			}
			if c.reason != "" {
				req := loadRequest(t, filepath.Join(dir, "container.so"))
				if r := call(t, tg.pid, tg.pid, req); r.Result != EDisabled || String(r.Msg[:]) != c.reason {
					t.Errorf("load while disabled: %v %q", r.Result, String(r.Msg[:]))
				}
			}
		})
	}
}

func procStatus(t *testing.T, pid int, key string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %s in /proc/%d/status", key, pid)
	return ""
}

// TestNoFootprint compares a process with the runtime to one without: same
// threads, same caught signals, and a runtime mapping under 256 KiB.
func TestNoFootprint(t *testing.T) {
	testenv.Require(t, testenv.Root)
	dir := fixtures(t)
	exe := filepath.Join(dir, "target")
	with := start(t, []string{preload(t)}, exe, "echo")
	without := start(t, nil, exe, "echo")
	if b, _ := libpulpBase(t, with.pid); b == 0 {
		t.Fatal("runtime not mapped")
	}
	for _, key := range []string{"Threads", "SigCgt", "SigBlk", "SigIgn"} {
		if a, b := procStatus(t, with.pid, key), procStatus(t, without.pid, key); a != b {
			t.Errorf("%s: %s with the runtime, %s without", key, a, b)
		}
	}
	// The runtime's mappings, and its .bss: the anonymous mapping that
	// starts where its last file mapping ends.
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", with.pid))
	if err != nil {
		t.Fatal(err)
	}
	var total, end uint64
	for _, l := range strings.Split(string(maps), "\n") {
		f := strings.Fields(l)
		if len(f) < 5 {
			continue
		}
		lo, hi, _ := strings.Cut(f[0], "-")
		a, err1 := strconv.ParseUint(lo, 16, 64)
		b, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("bad maps line %q", l)
		}
		ours := len(f) >= 6 && filepath.Base(f[5]) == "libpulp.so.0"
		if ours || (len(f) == 5 && a == end && end != 0) {
			total += b - a
			end = b
		}
		if !ours {
			end = 0
		}
	}
	vmWith, vmWithout := procStatus(t, with.pid, "VmSize"), procStatus(t, without.pid, "VmSize")
	t.Logf("runtime mappings: %d KiB; VmSize %s with the runtime, %s without", total/1024, vmWith, vmWithout)
	if total == 0 || total >= 256<<10 {
		t.Errorf("runtime maps %d KiB, want under 256", total/1024)
	}
}

// TestPrograms runs programs that must work with the runtime preloaded.
func TestPrograms(t *testing.T) {
	testenv.Require(t, testenv.Root)
	dir := fixtures(t)
	lib := testenv.Artifact(t, "libpulp.so.0")
	for _, c := range []struct {
		name    string
		exe     string
		preload string
		uid     uint32 // run as this user when not 0
		want    []string
	}{
		// libearly.so's constructor allocates before the runtime's runs.
		{"constructor before ours", "simple", lib, 0,
			[]string{"simple: early constructor ran", "runtime: ready"}},
		// A whole other allocator preloaded after the runtime: every block
		// goes through it, none through glibc's.
		{"another allocator", "simple", lib + ":" + filepath.Join(dir, "bump.so"), 0,
			[]string{"simple: early constructor ran", "runtime: ready"}},
		// dlopen and dlsym(RTLD_NEXT) resolve relative to their caller.
		{"caller-relative loader calls", "loadermain", lib, 0,
			[]string{"loader: plugin found", "loader: RTLD_NEXT puts works"}},
		// The preload is ignored; the program must still run.
		{"static", "simple-static", lib, 0, []string{"simple: no early", "runtime: absent"}},
		// A setuid-root program run by nobody: ld.so ignores an LD_PRELOAD
		// outside the system paths, and the program runs as usual. The
		// runtime is copied where nobody can read it, so that only ld.so's
		// secure mode can be what keeps it out.
		{"setuid", "simple-setuid", filepath.Join(dir, "libpulp.so.0"), 65534,
			[]string{"simple: early constructor ran", "runtime: absent"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			exe := filepath.Join(dir, c.exe)
			if c.uid != 0 {
				copyFile(t, filepath.Join(dir, "simple"), exe, 0o755|os.ModeSetuid)
				copyFile(t, lib, c.preload, 0o755)
			}
			cmd := exec.Command(exe)
			cmd.Env = append(os.Environ(), "LD_PRELOAD="+c.preload)
			if c.uid != 0 {
				cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: c.uid, Gid: c.uid}}
			}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			for _, w := range c.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output %q lacks %q", out, w)
				}
			}
		})
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(to, mode); err != nil {
		t.Fatal(err)
	}
}

// mapped reports whether pid maps a file with this basename.
func mapped(t *testing.T, pid int, base string) bool {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Contains(b, []byte("/"+base+"\n"))
}

func TestCallPing(t *testing.T) {
	testenv.Require(t, testenv.Root, testenv.Ptrace)
	dir := fixtures(t)
	tg := start(t, []string{preload(t)}, filepath.Join(dir, "target"), "echo")
	for i := range 3 {
		c := call(t, tg.pid, tg.pid, NewRequest(0, OpPing))
		if c.Result != OK {
			t.Fatalf("ping %d: %v %q", i, c.Result, String(c.Msg[:]))
		}
	}
	// The main thread was blocked in read(2): it continues its read, with
	// no EINTR, and the process was never stopped for its parent.
	fmt.Fprintln(tg.stdin, "hello")
	if got := tg.expect(t, "got: "); got != "hello" {
		t.Errorf("echo %q", got)
	}
	// A malformed request gets EINVAL and the thread still comes back.
	req := NewRequest(0, OpPing)
	req.Magic = 1
	if c := call(t, tg.pid, tg.pid, req); c.Result != EInval {
		t.Errorf("bad magic: %v", c.Result)
	}
	req = NewRequest(0, Op(77))
	if c := call(t, tg.pid, tg.pid, req); c.Result != EInval {
		t.Errorf("bad op: %v", c.Result)
	}
	fmt.Fprintln(tg.stdin, "again")
	if got := tg.expect(t, "got: "); got != "again" {
		t.Errorf("echo %q", got)
	}
	if txt := readBlock(t, tg.pid).Ring.Text(); !strings.Contains(txt, "malformed request") || !strings.Contains(txt, "unknown op") {
		t.Errorf("ring %q", txt)
	}
}

// TestRingAfterDeadWriter: a ring seq left odd (a writer killed mid-write)
// does not stop the runtime from logging, and ends even again.
func TestRingAfterDeadWriter(t *testing.T) {
	testenv.Require(t, testenv.Root, testenv.Ptrace)
	dir := fixtures(t)
	tg := start(t, []string{preload(t)}, filepath.Join(dir, "target"), "echo")
	addr := abiAddr(t, tg.pid)
	seq := readBlock(t, tg.pid).Ring.Seq
	writeMem(t, tg.pid, addr+OffRingSeq, binary.LittleEndian.AppendUint64(nil, seq+1))
	if c := call(t, tg.pid, tg.pid, NewRequest(0, Op(99))); c.Result != EInval {
		t.Fatalf("bad op: %v", c.Result)
	}
	r := readBlock(t, tg.pid).Ring
	if r.Seq%2 != 0 || r.Seq <= seq+1 || !strings.HasSuffix(r.Text(), "unknown op: invalid request (unknown op)\n") {
		t.Errorf("seq %d (was %d), text %q", r.Seq, seq, r.Text())
	}
}

// TestCallPreservesRegisters hijacks a thread spinning with known values
// in every general register and xmm0..15, many times.
func TestCallPreservesRegisters(t *testing.T) {
	testenv.Require(t, testenv.Root, testenv.Ptrace)
	dir := fixtures(t)
	tg := start(t, []string{preload(t)}, filepath.Join(dir, "target"), "regs")
	tid := blockedThread(t, tg)
	for i := range 20 {
		if c := call(t, tg.pid, tid, NewRequest(0, OpPing)); c.Result != OK {
			t.Fatalf("ping %d: %v", i, c.Result)
		}
	}
	fmt.Fprintln(tg.stdin, "stop")
	if got := tg.expect(t, "regs "); got != "ok" {
		t.Errorf("registers: %s", got)
	}
}

// TestCallKeepsErrno: a LOAD whose container's constructor sets errno, on
// a thread that holds an errno value, leaves that value in place.
func TestCallKeepsErrno(t *testing.T) {
	testenv.Require(t, testenv.Root, testenv.Ptrace)
	dir := fixtures(t)
	tg := start(t, []string{preload(t)}, filepath.Join(dir, "target"), "errno")
	tid := blockedThread(t, tg)
	req := loadRequest(t, filepath.Join(dir, "errnoctor.so"))
	if r := call(t, tg.pid, tid, req); r.Result != OK {
		t.Fatalf("load: %v %q", r.Result, String(r.Msg[:]))
	}
	fmt.Fprintln(tg.stdin, "stop")
	if got := tg.expect(t, "errno "); got != "ok" {
		t.Errorf("errno after the call: %s", got)
	}
}

// TestCallDefersSignals: a signal raised while the runtime works (here by
// the container's constructor) is handled after the call is DONE, even by
// a handler that siglongjmps away from the runtime's frames.
func TestCallDefersSignals(t *testing.T) {
	testenv.Require(t, testenv.Root, testenv.Ptrace)
	dir := fixtures(t)
	tg := start(t, []string{preload(t)}, filepath.Join(dir, "target"), "sigjmp")
	tid := blockedThread(t, tg)
	req := loadRequest(t, filepath.Join(dir, "raisector.so"))
	if r := call(t, tg.pid, tid, req); r.Result != OK {
		t.Fatalf("load: %v %q", r.Result, String(r.Msg[:]))
	}
	tg.expect(t, "jumped")
	// The loader's locks were not left held: another LOAD works.
	req = loadRequest(t, filepath.Join(dir, "container.so"))
	if r := call(t, tg.pid, tg.pid, req); r.Result != OK {
		t.Fatalf("second load: %v %q", r.Result, String(r.Msg[:]))
	}
}

func TestCallLoad(t *testing.T) {
	testenv.Require(t, testenv.Root, testenv.Ptrace)
	dir := fixtures(t)
	container := filepath.Join(dir, "container.so")
	for _, c := range []struct {
		name, path, target string
		want               Result
		msg                string
		preload            string // added to LD_PRELOAD after the runtime
		mode               string // of the target program; "" = echo
	}{
		{"main program", container, "", OK, "", "", ""},
		// PR_SET_MDWE forbids W+X and X-gaining mappings: the loader needs
		// neither, and the runtime never changes page protections.
		{"memory-deny-write-execute", container, "", OK, "", "", "mdwe"},
		{"library", container, "libc.so.6", OK, "", "", ""},
		{"another allocator", container, "libc.so.6", OK, "", ":" + filepath.Join(dir, "bump.so"), ""},
		{"no target", container, "libnope.so.1", ENoTarget, "target not loaded", "", ""},
		{"missing container", filepath.Join(dir, "missing.so"), "", EDlopen, "No such file", "", ""},
		{"not an ELF", filepath.Join(dir, "notelf.so"), "", EDlopen, "file too short", "", ""},
		{"relative path", "container.so", "", EInval, "not absolute", "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			if strings.HasSuffix(c.path, "notelf.so") {
				if err := os.WriteFile(c.path, []byte("x"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			mode := c.mode
			if mode == "" {
				mode = "echo"
			}
			tg := start(t, []string{preload(t) + c.preload}, filepath.Join(dir, "target"), mode)
			req := NewRequest(0, OpLoad)
			if err := req.SetPath(c.path); err != nil {
				t.Fatal(err)
			}
			req.SetTarget(c.target)
			r := call(t, tg.pid, tg.pid, req)
			if r.Result != c.want || !strings.Contains(String(r.Msg[:]), c.msg) {
				t.Fatalf("result %v %q, want %v %q", r.Result, String(r.Msg[:]), c.want, c.msg)
			}
			if got := mapped(t, tg.pid, filepath.Base(c.path)); got != (c.want == OK) {
				t.Errorf("container mapped: %v", got)
			}
			if c.want == OK {
				lo, _ := mapStart(t, tg.pid, c.path)
				if r.Out[0] == 0 || r.Out[1] != lo {
					t.Errorf("handle %#x bias %#x, container mapped at %#x", r.Out[0], r.Out[1], lo)
				}
				wantTarget := exeStart(t, tg.pid)
				if c.target != "" {
					wantTarget, _ = mapStartBase(t, tg.pid, c.target)
				}
				// The test program has no TLS; libc has.
				if r.Out[2] != wantTarget || (r.Out[3] != 0) != (c.target != "") {
					t.Errorf("target bias %#x modid %d, want %#x", r.Out[2], r.Out[3], wantTarget)
				}
			}
			fmt.Fprintln(tg.stdin, "still here")
			tg.expect(t, "got: still here")
		})
	}
}

func mapStart(t *testing.T, pid int, path string) (uint64, bool) {
	return mapStartBase(t, pid, filepath.Base(path))
}

// mapStartBase returns the lowest address of a mapping of a file with that
// basename (the load bias of a PIE object whose first segment is at 0).
func mapStartBase(t *testing.T, pid int, base string) (uint64, bool) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 6 && filepath.Base(f[5]) == base {
			lo, _, _ := strings.Cut(f[0], "-")
			v, err := strconv.ParseUint(lo, 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return v, true
		}
	}
	t.Fatalf("%s not mapped in %d", base, pid)
	return 0, false
}

func exeStart(t *testing.T, pid int) uint64 {
	t.Helper()
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		t.Fatal(err)
	}
	v, _ := mapStartBase(t, pid, filepath.Base(exe))
	return v
}

// TestCallLoadBusy: a thread inside the allocator or the dynamic loader
// gets EAGAIN for LOAD (and still answers PING), and goes back to where it
// was.
func TestCallLoadBusy(t *testing.T) {
	testenv.Require(t, testenv.Root, testenv.Ptrace)
	dir := fixtures(t)
	for _, c := range []struct {
		mode string
		env  string
		msg  string
	}{
		{"malloc", ":" + filepath.Join(dir, "slowmalloc.so"), "allocator"},
		{"dlopen", "", "dynamic loader"},
		{"iterate", "", "dynamic loader"},
		{"fork", "", "allocator"},
	} {
		t.Run(c.mode, func(t *testing.T) {
			tg := start(t, []string{preload(t) + c.env}, filepath.Join(dir, "target"), c.mode, filepath.Join(dir, "blockctor.so"))
			tid := blockedThread(t, tg)
			waitBlocked(t, tg.pid, tid)
			req := loadRequest(t, filepath.Join(dir, "container.so"))
			r := call(t, tg.pid, tid, req)
			if r.Result != EAgain || !strings.Contains(String(r.Msg[:]), c.msg) {
				t.Errorf("load: %v %q, want EAGAIN (%s)", r.Result, String(r.Msg[:]), c.msg)
			}
			if r := call(t, tg.pid, tid, NewRequest(0, OpPing)); r.Result != OK {
				t.Errorf("ping: %v", r.Result)
			}
			if mapped(t, tg.pid, "container.so") {
				t.Error("container mapped after EAGAIN")
			}
			fmt.Fprintln(tg.stdin, "main still works")
			tg.expect(t, "got: main still works")
		})
	}
}

// TestCallLoadSmallStack loads, on a thread created with a 32 KiB stack, a
// container whose constructor needs 160 KiB: the runtime runs the dlopen on
// a stack of its own.
func TestCallLoadSmallStack(t *testing.T) {
	testenv.Require(t, testenv.Root, testenv.Ptrace)
	dir := fixtures(t)
	tg := start(t, []string{preload(t)}, filepath.Join(dir, "target"), "smallstack")
	tid := blockedThread(t, tg)
	waitBlocked(t, tg.pid, tid)
	req := loadRequest(t, filepath.Join(dir, "bigctor.so"))
	if r := call(t, tg.pid, tid, req); r.Result != OK {
		t.Fatalf("load: %v %q", r.Result, String(r.Msg[:]))
	}
	if !mapped(t, tg.pid, "bigctor.so") {
		t.Error("container not mapped")
	}
	fmt.Fprintln(tg.stdin, "alive")
	tg.expect(t, "got: alive")
}

// TestCallLoadNeverDeadlocks: 200 LOADs, each of a container not loaded
// before, on threads that hammer malloc/free and dlopen/dlclose. Every call
// completes (call fails the test after 10 s) with OK or EAGAIN, and the
// process keeps running.
func TestCallLoadNeverDeadlocks(t *testing.T) {
	testenv.Require(t, testenv.Root, testenv.Ptrace)
	dir := fixtures(t)
	tg := start(t, []string{preload(t)}, filepath.Join(dir, "target"), "hammer", filepath.Join(dir, "plugins", "libplug.so"))
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", tg.pid))
	if err != nil {
		t.Fatal(err)
	}
	var tids []int
	for _, e := range tasks {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	if len(tids) != 16 {
		t.Fatalf("%d threads, want 16", len(tids))
	}
	src, err := os.ReadFile(filepath.Join(dir, "container.so"))
	if err != nil {
		t.Fatal(err)
	}
	copies := t.TempDir()
	results := map[Result]int{}
	for i := range 200 {
		path := filepath.Join(copies, fmt.Sprintf("c%d.so", i))
		if err := os.WriteFile(path, src, 0o644); err != nil {
			t.Fatal(err)
		}
		req := loadRequest(t, path)
		r := call(t, tg.pid, tids[i%len(tids)], req)
		if r.Result != OK && r.Result != EAgain {
			t.Fatalf("load %d: %v %q", i, r.Result, String(r.Msg[:]))
		}
		results[r.Result]++
	}
	t.Logf("results: %d ok, %d busy", results[OK], results[EAgain])
	if results[OK] == 0 {
		t.Error("no load succeeded")
	}
	fmt.Fprintln(tg.stdin, "alive")
	tg.expect(t, "got: alive")
}

// waitBlocked waits until thread tid sleeps in a system call.
func waitBlocked(t *testing.T, pid, tid int) {
	t.Helper()
	for range 1000 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/stat", pid, tid))
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.LastIndexByte(b, ')'); i > 0 && bytes.HasPrefix(b[i+1:], []byte(" S")) {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("thread %d never blocked", tid)
}

func TestCallGrowLedger(t *testing.T) {
	testenv.Require(t, testenv.Root, testenv.Ptrace)
	dir := fixtures(t)
	tg := start(t, []string{preload(t)}, filepath.Join(dir, "target"), "echo")
	addr := abiAddr(t, tg.pid)
	blk := readBlock(t, tg.pid)
	content := bytes.Repeat([]byte("ledger!"), 1000)
	writeMem(t, tg.pid, blk.Ledger, content)
	lenb := binary.LittleEndian.AppendUint64(nil, uint64(len(content)))
	writeMem(t, tg.pid, addr+OffLedgerLen, lenb)

	for _, c := range []struct {
		size uint64
		want Result
	}{
		{1000, OK}, // already big enough: no change
		{100000, OK},
		{1 << 40, EInval},
	} {
		old := readBlock(t, tg.pid)
		req := NewRequest(0, OpGrowLedger)
		req.Arg[0] = c.size
		r := call(t, tg.pid, tg.pid, req)
		if r.Result != c.want {
			t.Fatalf("grow to %d: %v %q", c.size, r.Result, String(r.Msg[:]))
		}
		blk := readBlock(t, tg.pid)
		if c.want != OK || c.size <= old.LedgerCap {
			if blk.Ledger != old.Ledger || blk.LedgerCap != old.LedgerCap || blk.LedgerSeq != old.LedgerSeq {
				t.Errorf("grow to %d changed the ledger", c.size)
			}
			continue
		}
		if blk.LedgerCap < c.size || blk.Ledger == old.Ledger || blk.LedgerSeq != old.LedgerSeq+2 {
			t.Errorf("grow to %d: ledger %#x cap %d seq %d", c.size, blk.Ledger, blk.LedgerCap, blk.LedgerSeq)
		}
		if got := readMem(t, tg.pid, blk.Ledger, len(content)); !bytes.Equal(got, content) {
			t.Error("ledger bytes not copied")
		}
		if got := readMem(t, tg.pid, old.Ledger, len(content)); !bytes.Equal(got, content) {
			t.Error("old ledger area changed")
		}
	}
}

// blockedThread reads the target's "blocked TID" line: the thread waiting
// for calls.
func blockedThread(t *testing.T, tg *target) int {
	t.Helper()
	tid, err := strconv.Atoi(tg.expect(t, "blocked "))
	if err != nil {
		t.Fatal(err)
	}
	return tid
}

// loadRequest returns a LOAD request of the container at path.
func loadRequest(t *testing.T, path string) *Request {
	t.Helper()
	req := NewRequest(0, OpLoad)
	if err := req.SetPath(path); err != nil {
		t.Fatal(err)
	}
	return req
}
