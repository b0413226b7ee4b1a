package trigger

import (
	"testing"

	"ulp/livepatch/abi"
	"ulp/livepatch/ptrace"
)

func TestBuildFrame(t *testing.T) {
	const entry = 0x7f0000001000
	minus := func(n int64) uint64 { return uint64(n) }
	tests := []struct {
		name             string
		rax, orig, rip   uint64
		wantRax, wantRip uint64
	}{
		{"running code", 5, ^uint64(0), 0x401000, 5, 0x401000},
		{"read ERESTARTSYS", minus(errRestartSys), 0, 0x401002, 0, 0x401000},
		{"ERESTARTNOINTR", minus(errRestartNoIntr), 7, 0x401002, 7, 0x401000},
		{"ERESTARTNOHAND", minus(errRestartNoHand), 23, 0x401002, 23, 0x401000},
		{"nanosleep ERESTART_RESTARTBLOCK", minus(errRestartRestartBlock), 35, 0x401002, nrRestartSyscall, 0x401000},
		{"finished syscall", 3, 1, 0x401002, 3, 0x401002},
		{"EINTR is not restarted", minus(-4), 0, 0x401002, minus(-4), 0x401002},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			regs := ptrace.Regs{Rax: tt.rax, Orig_rax: tt.orig, Rip: tt.rip, Rsp: 0x7ffd0000123f,
				Rdi: 11, Rsi: 12, R15: 15, Eflags: 0x246, Cs: 0x33, Ss: 0x2b}
			f, h := buildFrame(regs, entry)
			if f.GPR[abi.RAX] != tt.wantRax || f.Iret[abi.IretRIP] != tt.wantRip {
				t.Errorf("resume rax %#x rip %#x, want %#x %#x", f.GPR[abi.RAX], f.Iret[abi.IretRIP], tt.wantRax, tt.wantRip)
			}
			if f.GPR[abi.RDI] != 11 || f.GPR[abi.RSI] != 12 || f.GPR[abi.R15] != 15 ||
				f.Iret[abi.IretRSP] != regs.Rsp || f.Iret[abi.IretRFLAGS] != 0x246 ||
				f.Iret[abi.IretCS] != 0x33 || f.Iret[abi.IretSS] != 0x2b {
				t.Errorf("resume frame %+v %+v does not hold the thread's registers", f.GPR, f.Iret)
			}
			if h.Rip != entry || h.Orig_rax != ^uint64(0) {
				t.Errorf("hijack rip %#x orig_rax %#x", h.Rip, h.Orig_rax)
			}
			if h.Rdi%64 != 0 || h.Rsp%64 != 0 || h.Rsp >= h.Rdi {
				t.Errorf("request %#x, rsp %#x: want both 64-aligned, rsp below", h.Rdi, h.Rsp)
			}
			if h.Rdi+abi.RequestSize > regs.Rsp-redZone {
				t.Errorf("request [%#x, %#x) overlaps the red zone below %#x", h.Rdi, h.Rdi+abi.RequestSize, regs.Rsp)
			}
		})
	}
}
