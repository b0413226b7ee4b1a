package procfs

import (
	"fmt"
	"io"
	"math"

	"golang.org/x/sys/unix"
)

// ReadMem fills buf with the memory of process pid at addr, using
// process_vm_readv: the process keeps running and is not attached. It needs
// the same permission as ptrace (PTRACE_MODE_ATTACH_REALCREDS). A read that
// reaches unmapped memory fails; nothing is returned short.
func ReadMem(pid int, addr uint64, buf []byte) error {
	for done := 0; done < len(buf); {
		a := addr + uint64(done)
		if a < addr || a > math.MaxInt {
			return fmt.Errorf("read pid %d memory at %#x: address out of range", pid, a)
		}
		local := []unix.Iovec{{Base: &buf[done]}}
		local[0].SetLen(len(buf) - done)
		remote := []unix.RemoteIovec{{Base: uintptr(a), Len: len(buf) - done}}
		n, err := unix.ProcessVMReadv(pid, local, remote, 0)
		if err != nil {
			return procErr(pid, fmt.Errorf("read %d bytes at %#x: %w", len(buf)-done, a, err))
		}
		if n == 0 {
			return fmt.Errorf("pid %d: read %d bytes at %#x: %w", pid, len(buf)-done, a, io.ErrUnexpectedEOF)
		}
		done += n
	}
	return nil
}

// Mem is the memory of a running process as an io.ReaderAt whose offsets
// are addresses. It holds no resources.
type Mem struct{ PID int }

// ReadAt implements io.ReaderAt with ReadMem: it reads all of p or fails.
func (m Mem) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read pid %d memory: negative address %d", m.PID, off)
	}
	if err := ReadMem(m.PID, uint64(off), p); err != nil {
		return 0, err
	}
	return len(p), nil
}
