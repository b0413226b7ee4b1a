package procfs

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"ulp/internal/testenv"
)

func TestParseMaps(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []Mapping
		wantErr bool
	}{
		{name: "empty", in: ""},
		{
			name: "file and anonymous",
			in: "55d0c0a00000-55d0c0a02000 r--p 00000000 fd:01 393228                     /usr/bin/cat\n" +
				"7f5a1c000000-7f5a1c021000 rw-p 00000000 00:00 0 \n",
			want: []Mapping{
				{Start: 0x55d0c0a00000, End: 0x55d0c0a02000, Perms: "r--p", Dev: "fd:01", Inode: 393228, Path: "/usr/bin/cat"},
				{Start: 0x7f5a1c000000, End: 0x7f5a1c021000, Perms: "rw-p", Dev: "00:00"},
			},
		},
		{
			name: "path with spaces, deleted, no final newline",
			in:   "7f5a20000000-7f5a20001000 r-xp 00001000 08:01 1234    /tmp/a b/lib x.so (deleted)",
			want: []Mapping{{Start: 0x7f5a20000000, End: 0x7f5a20001000, Perms: "r-xp", Offset: 0x1000, Dev: "08:01", Inode: 1234, Path: "/tmp/a b/lib x.so (deleted)"}},
		},
		{name: "bad range", in: "zz-10 r--p 0 00:00 0\n", wantErr: true},
		{name: "end before start", in: "20-10 r--p 0 00:00 0\n", wantErr: true},
		{name: "no dash", in: "2010 r--p 0 00:00 0\n", wantErr: true},
		{name: "short perms", in: "10-20 r-- 0 00:00 0\n", wantErr: true},
		{name: "bad dev", in: "10-20 r--p 0 0000 0\n", wantErr: true},
		{name: "bad inode", in: "10-20 r--p 0 00:00 x\n", wantErr: true},
		{name: "truncated", in: "10-20 r--p\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMaps([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				if !errors.Is(err, ErrFormat) {
					t.Errorf("error %v does not wrap ErrFormat", err)
				}
				return
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestMappingPerms(t *testing.T) {
	m := Mapping{Perms: "r-xp", Path: "/usr/lib/x86_64-linux-gnu/libc.so.6", Start: 10, End: 20}
	if !m.Readable() || m.Writable() || !m.Executable() || !m.Private() || m.Base() != "libc.so.6" || !m.Contains(19) || m.Contains(20) {
		t.Errorf("perms of %+v decoded wrong", m)
	}
}

func FuzzParseMaps(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.maps"))
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := ParseMaps(b)
		if err != nil {
			if ms != nil {
				t.Fatal("mappings returned with an error")
			}
			return
		}
		for _, m := range ms {
			if m.End < m.Start || len(m.Perms) != 4 {
				t.Fatalf("accepted a bad mapping %+v", m)
			}
		}
	})
}

func TestParseStatus(t *testing.T) {
	in := "Name:\tmy prog\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t42\nNgid:\t0\nPid:\t43\nPPid:\t1\n" +
		"TracerPid:\t7\nUid:\t1000\t1001\t1002\t1003\nGid:\t5\t6\t7\t8\nThreads:\t3\n" +
		"SigBlk:\t0000000000000000\nSigIgn:\t0000000000001000\nSigCgt:\t0000000180004a02\n"
	s, err := ParseStatus([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := Status{Name: "my prog", State: 'S', Tgid: 42, PID: 43, PPid: 1, TracerPid: 7,
		Uid: [4]int{1000, 1001, 1002, 1003}, Gid: [4]int{5, 6, 7, 8}, Threads: 3, SigIgn: 0x1000, SigCgt: 0x180004a02}
	if *s != want {
		t.Errorf("got %+v\nwant %+v", *s, want)
	}
	for _, bad := range []string{"Name:\tx\n", "Pid:\tx\n", "Pid:\t1\nUid:\t1 2\n", "Pid:\t1\nSigCgt:\tzz\n", "Pid:\t1\nState:\t\n"} {
		if _, err := ParseStatus([]byte(bad)); !errors.Is(err, ErrFormat) {
			t.Errorf("ParseStatus(%q): %v, want ErrFormat", bad, err)
		}
	}
}

func TestParseAuxv(t *testing.T) {
	b := make([]byte, 0, 48)
	for _, w := range []uint64{AtPhdr, 0x1040, AtEntry, 0x2000, AtNull, 0} {
		b = append(b, byte(w), byte(w>>8), 0, 0, 0, 0, 0, 0)
	}
	a, err := ParseAuxv(b)
	if err != nil || a[AtPhdr] != 0x1040 || a[AtEntry] != 0x2000 || len(a) != 2 {
		t.Errorf("ParseAuxv = %v, %v", a, err)
	}
	for _, bad := range [][]byte{b[:17], b[:32]} {
		if _, err := ParseAuxv(bad); !errors.Is(err, ErrFormat) {
			t.Errorf("ParseAuxv(%d bytes): %v, want ErrFormat", len(bad), err)
		}
	}
}

// startChild starts a sleeping child process, killed and reaped at cleanup.
func startChild(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// Start returns once the exec has begun (the close-on-exec pipe closes
	// before the kernel maps the new program): wait until the program is
	// mapped, so the tests read sleep and not a half-built image.
	pid := cmd.Process.Pid
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		exe, err := Exe(pid)
		maps, err2 := Maps(pid)
		if err == nil && err2 == nil && slices.ContainsFunc(maps, func(m Mapping) bool { return m.Path == exe && m.Executable() }) {
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatalf("sleep (pid %d) never finished its exec: %v, %v", pid, err, err2)
		}
	}
}

func TestLiveProcess(t *testing.T) {
	child := startChild(t)
	pid := child.Process.Pid
	maps, err := Maps(pid)
	if err != nil {
		t.Fatal(err)
	}
	exe, err := Exe(pid)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(maps, func(m Mapping) bool { return m.Path == exe && m.Executable() }) {
		t.Errorf("maps of %d have no executable mapping of %s", pid, exe)
	}
	if c, err := Comm(pid); err != nil || c != "sleep" {
		t.Errorf("Comm = %q, %v", c, err)
	}
	st, err := ReadStatus(pid)
	if err != nil || st.PID != pid || st.PPid != os.Getpid() || st.Threads != 1 || st.Uid[0] != os.Getuid() {
		t.Errorf("ReadStatus = %+v, %v", st, err)
	}
	if tids, err := Tasks(pid); err != nil || !slices.Equal(tids, []int{pid}) {
		t.Errorf("Tasks = %v, %v", tids, err)
	}
	a, err := Auxv(pid)
	if err != nil || a[AtPhdr] == 0 || a[AtEntry] == 0 {
		t.Errorf("Auxv = %v, %v", a, err)
	}
	pids, err := PIDs()
	if err != nil || !slices.Contains(pids, pid) || !slices.Contains(pids, os.Getpid()) {
		t.Errorf("PIDs misses %d or ourselves: %v", pid, err)
	}

	// The ELF header of the child's executable, read while it runs.
	var text Mapping
	for _, m := range maps {
		if m.Path == exe && m.Offset == 0 {
			text = m
			break
		}
	}
	hdr := make([]byte, 4)
	if err := ReadMem(pid, text.Start, hdr); err != nil || string(hdr) != "\x7fELF" {
		t.Errorf("ReadMem of the ELF header = %q, %v", hdr, err)
	}
	if _, err := (Mem{PID: pid}).ReadAt(hdr, 0x10); err == nil {
		t.Errorf("ReadAt of unmapped memory succeeded")
	}
}

func TestReadMemOwnProcess(t *testing.T) {
	want := []byte("the quick brown fox jumps over the lazy dog")
	buf := make([]byte, len(want))
	if err := ReadMem(os.Getpid(), uint64(uintptr(unsafe.Pointer(&want[0]))), buf); err != nil {
		t.Fatal(err)
	}
	if string(buf) != string(want) {
		t.Errorf("read %q", buf)
	}
	runtime.KeepAlive(want)
	if tids, err := Tasks(os.Getpid()); err != nil || len(tids) < 2 {
		t.Errorf("Tasks of the Go test binary = %v, %v; want several threads", tids, err)
	}
}

func TestGoneProcess(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid // reaped: gone (pid reuse within the test is not a concern)
	if _, err := Maps(pid); !errors.Is(err, ErrNoProcess) {
		t.Errorf("Maps of a gone process: %v", err)
	}
	if err := ReadMem(pid, 0x1000, make([]byte, 8)); !errors.Is(err, ErrNoProcess) {
		t.Errorf("ReadMem of a gone process: %v", err)
	}
	if _, err := Comm(pid); !errors.Is(err, ErrNoProcess) {
		t.Errorf("Comm of a gone process: %v", err)
	}
}

// TestZombie: a child that exited and is not reaped yet is Dead and Gone,
// though /proc still shows it; a running one is neither.
func TestZombie(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	pid := cmd.Process.Pid
	var st *Status
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
		var err error
		if st, err = ReadStatus(pid); err != nil {
			t.Fatalf("ReadStatus of an unreaped child: %v", err)
		}
		if st.State == 'Z' || time.Now().After(deadline) {
			break
		}
	}
	if !st.Dead() || !Gone(pid) {
		t.Errorf("exited child: State %q, Dead %v, Gone %v; want a zombie, dead and gone", st.State, st.Dead(), Gone(pid))
	}
	if st, err := ReadStatus(os.Getpid()); err != nil || st.Dead() || Gone(os.Getpid()) {
		t.Errorf("this process: %+v, %v; want neither dead nor gone", st, err)
	}
}

func TestPermissionDenied(t *testing.T) {
	testenv.Require(t, testenv.Root)
	// Run this test binary again as nobody against a child of root.
	child := startChild(t)
	dir, err := os.MkdirTemp("", "procfs-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "procfs.test")
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestPermissionHelper$", "-test.v")
	cmd.Env = append(os.Environ(), "PROCFS_HELPER_PID="+itoa(child.Process.Pid))
	cmd.SysProcAttr = nobody()
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestPermissionHelper") {
		t.Fatalf("helper as nobody: %v\n%s", err, out)
	}
}

// TestPermissionHelper runs as nobody (from TestPermissionDenied): reading a
// root process's memory must fail with a permission error, not a crash.
func TestPermissionHelper(t *testing.T) {
	pidStr := os.Getenv("PROCFS_HELPER_PID")
	if pidStr == "" {
		return // only meaningful as a helper process
	}
	pid := atoi(t, pidStr)
	err := ReadMem(pid, 0x1000, make([]byte, 8))
	if !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("ReadMem of a root process as nobody: %v, want a permission error", err)
	}
	if _, err := Auxv(pid); !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("Auxv of a root process as nobody: %v, want a permission error", err)
	}
}

func FuzzParseStatus(f *testing.F) {
	seed, err := os.ReadFile(filepath.Join("testdata", "cat.status"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, b []byte) {
		if s, err := ParseStatus(b); (err == nil) == (s == nil) {
			t.Fatalf("ParseStatus = %v, %v", s, err)
		}
	})
}

func FuzzParseAuxv(f *testing.F) {
	seed, err := os.ReadFile(filepath.Join("testdata", "cat.auxv"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, b []byte) {
		if a, err := ParseAuxv(b); (err == nil) == (a == nil) || len(a) > len(b)/16 {
			t.Fatalf("ParseAuxv = %v, %v", a, err)
		}
	})
}
