package ptrace

import (
	"errors"
	"fmt"
	"math"

	"golang.org/x/sys/unix"
)

// Write writes b at addr of the process through /proc/PID/mem, opened
// when the process was seized:
//   - the kernel writes through page protections (FOLL_FORCE), so read-only
//     text is written without any mprotect in the target (process_vm_writev
//     fails there with EFAULT);
//   - the file is bound to the memory the process had when it was seized:
//     after an execve the writes fail instead of landing in the new program.
//
// The caller stops every thread that could execute code being written, or
// writes only bytes no thread can reach: the kernel copies them with
// memcpy, which may store them one byte at a time.
func (p *Process) Write(addr uint64, b []byte) error {
	if p.mem == nil {
		return ErrDetached
	}
	if addr > math.MaxInt64-uint64(len(b)) {
		return fmt.Errorf("write at %#x: address out of range", addr)
	}
	// pwrite itself, not os.File.WriteAt: the kernel answers 0 once the
	// memory is gone (the process exited or executed another program), and
	// WriteAt would retry that forever.
	fd := int(p.mem.Fd())
	for done := 0; done < len(b); {
		n, err := unix.Pwrite(fd, b[done:], int64(addr)+int64(done))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("write %d bytes at %#x: %w", len(b), addr, err)
		}
		if n <= 0 {
			return fmt.Errorf("write %d bytes at %#x: the process's memory is gone (exited or executed another program): %w",
				len(b), addr, ErrExited)
		}
		done += n
	}
	return nil
}
