package target

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"ulp/internal/testenv"
	"ulp/livepatch/abi"
	"ulp/livepatch/container"
	"ulp/livepatch/elfsym"
	"ulp/livepatch/ledger"
	"ulp/livepatch/procfs"
)

const victimBuildID = "0123456789abcdef0123456789abcdef01234567"

// victim is a running testdata/victim.c.
type victim struct {
	pid    int
	abi    uint64 // &ulp_abi as the process sees it (0 without the runtime)
	answer uint64 // &libvictim_answer
	lib    string // path of libvictim.so
}

// buildVictim compiles the victim and its library into a new folder.
func buildVictim(t testing.TB) (exe, lib string) {
	t.Helper()
	dir := t.TempDir()
	lib = filepath.Join(dir, "libvictim.so")
	testenv.CompileC(t, lib, []string{"-shared", "-fPIC", "-O2", "-fpatchable-function-entry=16,14",
		"-Wl,--build-id=0x" + victimBuildID}, "testdata/libvictim.c")
	exe = filepath.Join(dir, "victim")
	testenv.CompileC(t, exe, []string{"-O2", "-L" + dir, "-Wl,-rpath," + dir}, "testdata/victim.c", "-lvictim", "-ldl")
	return exe, lib
}

// startVictim runs the victim, with the runtime preloaded when preload is
// set, and waits for its "ready" line. It is killed and reaped at cleanup.
func startVictim(t testing.TB, preload bool) *victim {
	t.Helper()
	runtime := ""
	if preload {
		runtime = testenv.Artifact(t, "libpulp.so.0")
	}
	return startVictimWith(t, runtime)
}

// startVictimWith runs the victim with runtime preloaded ("" for none).
func startVictimWith(t testing.TB, runtime string) *victim {
	t.Helper()
	testenv.Require(t, testenv.CC)
	exe, lib := buildVictim(t)
	cmd := exec.Command(exe)
	cmd.Env = os.Environ()
	if runtime != "" {
		cmd.Env = append(cmd.Env, "LD_PRELOAD="+runtime)
	}
	_, stdout := testenv.StartPiped(t, cmd)
	v := &victim{pid: cmd.Process.Pid, lib: lib}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatal("victim exited before it was ready")
			}
			var p uintptr
			switch {
			case strings.HasPrefix(line, "abi "):
				if line != "abi (nil)" {
					fmt.Sscanf(line, "abi %v", &p)
				}
				v.abi = uint64(p)
			case strings.HasPrefix(line, "answer "):
				fmt.Sscanf(line, "answer %v", &p)
				v.answer = uint64(p)
			case strings.HasPrefix(line, "ready"):
				go io.Copy(io.Discard, stdout)
				return v
			}
		case <-timeout:
			t.Fatal("victim not ready after 10s")
		}
	}
}

func TestOpen(t *testing.T) {
	v := startVictim(t, true)
	p, err := Open(v.pid)
	if err != nil {
		t.Fatal(err)
	}
	if p.Comm != "victim" || p.PID != v.pid {
		t.Errorf("pid %d comm %q", p.PID, p.Comm)
	}
	if p.ABI != v.abi || p.ABI == 0 {
		t.Errorf("ABI at %#x, the process says %#x", p.ABI, v.abi)
	}
	if p.Runtime == nil || p.Runtime.Name != RuntimeName || !p.Runtime.Contains(p.ABI) {
		t.Errorf("runtime %+v", p.Runtime)
	}
	lib := p.Object("libvictim.so")
	if lib == nil {
		t.Fatalf("libvictim.so not among %v", names(p))
	}
	if got := fmt.Sprintf("%x", lib.BuildID); got != victimBuildID {
		t.Errorf("build-id %s, want %s", got, victimBuildID)
	}
	obj, err := elfsym.Open(v.lib)
	if err != nil {
		t.Fatal(err)
	}
	sym, err := obj.Lookup("libvictim_answer", elfsym.TypeFunc)
	if err != nil {
		t.Fatal(err)
	}
	if lib.Bias+sym.Offset != v.answer {
		t.Errorf("bias %#x + offset %#x = %#x, the process says %#x", lib.Bias, sym.Offset, lib.Bias+sym.Offset, v.answer)
	}
	if m := p.Main(); m == nil || m.Name != "victim" || len(m.BuildID) == 0 {
		t.Errorf("main object %+v", m)
	}
	if libc := p.Object("libc.so.6"); libc == nil || len(libc.BuildID) != 20 {
		t.Errorf("libc.so.6: %+v", libc)
	}
	blk, err := p.ReadABI()
	if err != nil {
		t.Fatal(err)
	}
	if blk.State != abi.StateReady || blk.LedgerCap < abi.StaticLedgerSize || blk.Entry == 0 {
		t.Errorf("block: state %v, ledger cap %d, entry %#x", blk.State, blk.LedgerCap, blk.Entry)
	}
	if at := time.Unix(int64(blk.LoadedAt), 0); time.Since(at) > time.Minute || time.Until(at) > time.Minute {
		t.Errorf("loaded at %v", at)
	}
}

// TestOpenDeletedRuntime opens a process whose runtime file was removed
// after it started (a package upgrade): the mapped file is still reachable
// through /proc/PID/map_files.
func TestOpenDeletedRuntime(t *testing.T) {
	testenv.Require(t, testenv.Root)
	rt := filepath.Join(t.TempDir(), RuntimeName)
	b, err := os.ReadFile(testenv.Artifact(t, RuntimeName))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rt, b, 0o755); err != nil {
		t.Fatal(err)
	}
	v := startVictimWith(t, rt)
	if err := os.Remove(rt); err != nil {
		t.Fatal(err)
	}
	found, err := Select("")
	if err != nil || !slices.ContainsFunc(found, func(f Found) bool { return f.PID == v.pid }) {
		t.Errorf("List misses the process with a deleted runtime: %v, %v", found, err)
	}
	p, err := Open(v.pid)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Runtime.Deleted || p.Runtime.Path != rt || p.ABI != v.abi {
		t.Errorf("runtime %+v, ABI %#x, want deleted %s and ABI %#x", p.Runtime, p.ABI, rt, v.abi)
	}
	if _, err := p.ReadABI(); err != nil {
		t.Error(err)
	}
}

func names(p *Process) []string {
	var out []string
	for _, o := range p.Objects {
		out = append(out, o.Name)
	}
	return out
}

func TestOpenWithoutRuntime(t *testing.T) {
	v := startVictim(t, false)
	if _, err := Open(v.pid); !errors.Is(err, ErrNoRuntime) {
		t.Errorf("Open of a process without the runtime: %v, want ErrNoRuntime", err)
	}
	p, err := Inspect(v.pid)
	if err != nil || p.Runtime != nil || p.Object("libvictim.so") == nil {
		t.Errorf("Inspect = %+v, %v", p, err)
	}
}

func TestList(t *testing.T) {
	with := startVictim(t, true)
	without := startVictim(t, false)
	all, err := List()
	if err != nil {
		t.Fatal(err)
	}
	found := slices.Collect(all)
	pids := make([]int, 0, len(found))
	for _, f := range found {
		if f.Err == nil {
			pids = append(pids, f.PID)
		}
	}
	if !slices.Contains(pids, with.pid) {
		t.Errorf("List misses %d: %v", with.pid, found)
	}
	if slices.Contains(pids, without.pid) || slices.Contains(pids, os.Getpid()) {
		t.Errorf("List has %d (no runtime) or ourselves: %v", without.pid, found)
	}
}

// writeMem writes into the victim through /proc/PID/mem, as the trigger
// does while it holds the process.
func writeMem(t *testing.T, pid int, addr uint64, b []byte) {
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

func u64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

func TestReadLedger(t *testing.T) {
	testenv.Require(t, testenv.Ptrace)
	v := startVictim(t, true)
	p, err := Open(v.pid)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	l, err := p.ReadLedger(ctx)
	if err != nil || len(l.Patches) != 0 {
		t.Fatalf("fresh ledger: %+v, %v", l, err)
	}

	want := &ledger.Ledger{
		Patches: []ledger.Patch{{ID: container.ID{7}, Container: "/x/lp.so", Target: "libvictim.so",
			AppliedAt: time.Unix(1700000000, 0).UTC(), Labels: []string{"bsc#1"},
			Redirects: []ledger.Redirect{{Old: v.answer, New: 0x1234}}}},
		Stacks: []ledger.Stack{{Addr: v.answer, Mechanism: container.MechPad, Orig: []byte{0x90, 0x90},
			Entries: []ledger.Entry{{Patch: container.ID{7}, New: 0x1234}}}},
	}
	enc, err := ledger.Encode(want)
	if err != nil {
		t.Fatal(err)
	}
	area, err := p.readLedgerArea()
	if err != nil {
		t.Fatal(err)
	}
	// The writer's protocol: odd counter, bytes and length, even counter.
	writeMem(t, v.pid, p.ABI+abi.OffLedgerSeq, u64(area.Seq+1))
	writeMem(t, v.pid, area.Addr, enc)
	writeMem(t, v.pid, p.ABI+abi.OffLedgerLen, u64(uint64(len(enc))))
	writeMem(t, v.pid, p.ABI+abi.OffLedgerSeq, u64(area.Seq+2))
	gotL, err := p.ReadLedger(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !gotL.Equal(want) {
		t.Errorf("ledger %+v, want %+v", gotL, want)
	}

	// A writer that died after finishing the bytes but before the even
	// counter: no tracer is left, so the reader takes the whole ledger.
	writeMem(t, v.pid, p.ABI+abi.OffLedgerSeq, u64(area.Seq+3))
	got, gotArea, err := p.ReadLedgerBytes(ctx)
	if err != nil || gotArea.Seq != area.Seq+3 {
		t.Fatalf("read after a dead writer: seq %d, %v", gotArea.Seq, err)
	}
	if l, err := ledger.Decode(got); err != nil || !l.Equal(want) {
		t.Errorf("ledger left by a dead writer: %+v, %v", l, err)
	}
	// One that died mid-write left a torn ledger: the checksum rejects it.
	writeMem(t, v.pid, area.Addr+uint64(len(enc))/2, []byte("torn"))
	if _, err := p.ReadLedger(ctx); !errors.Is(err, ErrFormat) {
		t.Errorf("ReadLedger of a torn ledger: %v, want ErrFormat", err)
	}
	writeMem(t, v.pid, p.ABI+abi.OffLedgerSeq, u64(area.Seq+4))

	// Garbage under a stable counter is an error, not a panic.
	writeMem(t, v.pid, area.Addr, []byte("garbage!"))
	if _, err := p.ReadLedger(ctx); !errors.Is(err, ErrFormat) {
		t.Errorf("ReadLedger of garbage: %v, want ErrFormat", err)
	}
	writeMem(t, v.pid, p.ABI+abi.OffLedgerLen, u64(area.Cap+1))
	if _, err := p.ReadLedger(ctx); !errors.Is(err, ErrFormat) {
		t.Errorf("ReadLedger with length above capacity: %v, want ErrFormat", err)
	}
}

func TestReadRing(t *testing.T) {
	v := startVictim(t, true)
	p, err := Open(v.pid)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := p.ReadRing(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(lines, func(s string) bool { return strings.Contains(s, "libpulp loaded") }) {
		t.Errorf("ring lines %q lack the runtime's load message", lines)
	}
}

func TestRingLines(t *testing.T) {
	ring := func(head uint64, text string) *abi.Ring {
		r := &abi.Ring{Head: head}
		for i := range text {
			r.Buf[(head-uint64(len(text))+uint64(i))%abi.RingSize] = text[i]
		}
		return r
	}
	full := strings.Repeat("x", abi.RingSize-5) + "\nabc\n" // exactly RingSize bytes
	tests := []struct {
		name string
		r    *abi.Ring
		want []string
	}{
		{"empty", ring(0, ""), nil},
		{"two lines", ring(8, "one\ntwo\n"), []string{"one", "two"}},
		{"unfinished last line", ring(7, "one\ntwo"), []string{"one"}},
		{"wrapped: first line cut", ring(abi.RingSize+100, full), []string{"abc"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ringLines(tt.r); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// BenchmarkOpenAndRead measures what `ulp patches` costs per process:
// finding the objects and the ABI block, then reading the ledger and ring,
// with the process running.
func BenchmarkOpenAndRead(b *testing.B) {
	v := startVictim(b, true).pid
	ctx := b.Context()
	for b.Loop() {
		p, err := Open(v)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.ReadLedger(ctx); err != nil {
			b.Fatal(err)
		}
		if _, err := p.ReadRing(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// TestReadLedgerWaitsForLiveWriter checks that an odd ledger counter is
// waited for while another process traces the target (a live agent may be
// writing), and read as it is once that tracer is gone.
func TestReadLedgerWaitsForLiveWriter(t *testing.T) {
	testenv.Require(t, testenv.Ptrace)
	if _, err := exec.LookPath("strace"); err != nil {
		testenv.Require(t, "strace") // unknown capability: skips, or fails under ULP_TEST_REQUIRE=all
	}
	v := startVictim(t, true)
	p, err := Open(v.pid)
	if err != nil {
		t.Fatal(err)
	}
	area, err := p.readLedgerArea()
	if err != nil {
		t.Fatal(err)
	}
	tracer := exec.Command("strace", "-qq", "-e", "trace=none", "-o", "/dev/null", "-p", strconv.Itoa(v.pid))
	if err := tracer.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			tracer.Process.Kill()
			tracer.Wait()
		}
	}
	t.Cleanup(stop)
	deadline := time.Now().Add(10 * time.Second)
	for !traced(t, v.pid, tracer.Process.Pid) {
		if time.Now().After(deadline) {
			t.Fatal("strace did not attach in 10s")
		}
		time.Sleep(time.Millisecond)
	}
	writeMem(t, v.pid, p.ABI+abi.OffLedgerSeq, u64(area.Seq+1))
	short, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, err := p.ReadLedger(short); err == nil {
		t.Fatal("ReadLedger returned while another tracer may be writing")
	}
	stop()
	if l, err := p.ReadLedger(t.Context()); err != nil || len(l.Patches) != 0 {
		t.Errorf("ReadLedger after the tracer left: %+v, %v", l, err)
	}
}

func traced(t *testing.T, pid, by int) bool {
	t.Helper()
	st, err := procfs.ReadStatus(pid)
	if err != nil {
		t.Fatal(err)
	}
	return st.TracerPid == by
}

// TestFilter: a whole-host selection keeps the processes of the user asked
// for that the caller may inspect, and counts those it may not apart.
func TestFilter(t *testing.T) {
	denied := fmt.Errorf("pid 3: %w", fs.ErrPermission)
	all := []Found{
		{PID: 1, UID: 0},
		{PID: 2, UID: 1000},
		{PID: 3, UID: 0, Err: denied},
		{PID: 4, UID: 1000, Err: errors.New("unexpected data")},
		{PID: 5, UID: -1, Err: denied},
	}
	tests := []struct {
		uid          int
		want         []int
		inaccessible int
	}{
		{-1, []int{1, 2, 4}, 2},
		{0, []int{1}, 1},
		{1000, []int{2, 4}, 0},
		{42, nil, 0},
	}
	for _, tt := range tests {
		fl := &Filter{UID: tt.uid}
		var got []int
		for f := range fl.Apply(slices.Values(all)) {
			got = append(got, f.PID)
		}
		if !slices.Equal(got, tt.want) || fl.Inaccessible != tt.inaccessible {
			t.Errorf("uid %d: %v, %d inaccessible; want %v, %d", tt.uid, got, fl.Inaccessible, tt.want, tt.inaccessible)
		}
	}
}

// TestRuntimeAnyName: the runtime is recognised by the block it exports,
// whatever its file name (libpulp.so.0.0.0 behind a libpulp.so.0 link, as
// a distribution installs it, or any other name).
func TestRuntimeAnyName(t *testing.T) {
	b, err := os.ReadFile(testenv.Artifact(t, RuntimeName))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	versioned := filepath.Join(dir, "libpulp.so.0.0.0")
	other := filepath.Join(dir, "ulp-runtime-copy.so")
	link := filepath.Join(dir, RuntimeName)
	for _, p := range []string{versioned, other} {
		if err := os.WriteFile(p, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("libpulp.so.0.0.0", link); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ preload, mapped string }{{link, versioned}, {other, other}} {
		t.Run(filepath.Base(tt.preload), func(t *testing.T) {
			v := startVictimWith(t, tt.preload)
			found, err := Select("")
			if err != nil || !slices.ContainsFunc(found, func(f Found) bool { return f.PID == v.pid && f.Err == nil }) {
				t.Errorf("List misses the process with runtime %s: %v, %v", tt.mapped, found, err)
			}
			p, err := Open(v.pid)
			if err != nil {
				t.Fatal(err)
			}
			if p.Runtime.Path != tt.mapped || p.ABI != v.abi {
				t.Errorf("runtime %+v, ABI %#x; want %s and ABI %#x", p.Runtime, p.ABI, tt.mapped, v.abi)
			}
			if _, err := p.ReadABI(); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestSUSERuntime: a process that runs SUSE libpulp's runtime is not
// taken for one with this runtime, and the error says which it runs.
func TestSUSERuntime(t *testing.T) {
	testenv.Require(t, testenv.Libpulp)
	rt := filepath.Join(testenv.LibpulpDir(), "lib", "libpulp.so.0.0.0") // lib/libpulp.so.0 is a copied symlink: 16 bytes of text
	rt, err := filepath.EvalSymlinks(rt)                                 // the maps name the file by its real path
	if err != nil {
		t.Fatal(err)
	}
	v := startVictimWith(t, rt)
	found, err := Select("")
	if err != nil || slices.ContainsFunc(found, func(f Found) bool { return f.PID == v.pid }) {
		t.Errorf("List has the process with SUSE's runtime: %v, %v", found, err)
	}
	_, err = Open(v.pid)
	if !errors.Is(err, ErrNoRuntime) || !errors.Is(err, ErrSUSERuntime) || !strings.Contains(err.Error(), rt) {
		t.Errorf("Open: %v, want ErrNoRuntime naming SUSE's runtime", err)
	}
}
