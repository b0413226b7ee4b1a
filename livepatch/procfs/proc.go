package procfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// Errors of this package.
var (
	// ErrNoProcess: the process (or thread) does not exist (any more).
	ErrNoProcess = errors.New("no such process")
	// ErrFormat: a /proc file did not have the expected syntax.
	ErrFormat = errors.New("malformed proc file")
)

// Root is where procfs is mounted.
const Root = "/proc"

// path returns /proc/pid/name.
func path(pid int, name string) string {
	return Root + "/" + strconv.Itoa(pid) + "/" + name
}

// maxProcFile bounds what is read of one /proc file: a process's memory
// map is its own business (vm.max_map_count lines of paths of up to 4 KiB),
// and the largest real ones take a few MiB.
const maxProcFile = 16 << 20

// readFile reads /proc/pid/name, mapping a vanished process to ErrNoProcess.
// It makes the system calls itself rather than through os.File, whose
// set-up (a poller registration that /proc files refuse, descriptor flags)
// costs five more calls than open, read and close: a whole-host trigger
// reads a dozen of these files for every process.
func readFile(pid int, name string) ([]byte, error) {
	p := path(pid, name)
	fd, err := syscall.Open(p, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	for errors.Is(err, syscall.EINTR) {
		fd, err = syscall.Open(p, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, procErr(pid, &fs.PathError{Op: "open", Path: p, Err: err})
	}
	defer syscall.Close(fd)
	b := make([]byte, 0, 4096)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := syscall.Read(fd, b[len(b):cap(b)])
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return nil, procErr(pid, &fs.PathError{Op: "read", Path: p, Err: err})
		}
		if n <= 0 {
			return b, nil
		}
		if b = b[:len(b)+n]; len(b) > maxProcFile {
			return nil, fmt.Errorf("pid %d: %s larger than %d bytes", pid, name, maxProcFile)
		}
	}
}

// procErr wraps err with the pid, adding ErrNoProcess when the process is gone.
func procErr(pid int, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("pid %d: %w: %w", pid, ErrNoProcess, err)
	}
	return fmt.Errorf("pid %d: %w", pid, err)
}

// PIDs lists the processes under /proc, ascending.
func PIDs() ([]int, error) {
	return numericEntries(Root)
}

// Tasks lists the thread ids of process pid (/proc/pid/task), ascending.
func Tasks(pid int) ([]int, error) {
	tids, err := numericEntries(path(pid, "task"))
	if err != nil {
		return nil, procErr(pid, err)
	}
	return tids, nil
}

func numericEntries(dir string) ([]int, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var ids []int
	for _, e := range ents {
		if id, err := strconv.Atoi(e.Name()); err == nil && id > 0 {
			ids = append(ids, id)
		}
	}
	sort.Ints(ids)
	return ids, nil
}

// Comm returns the process's command name (at most 15 bytes, from
// /proc/pid/comm) without the trailing newline.
func Comm(pid int) (string, error) {
	b, err := readFile(pid, "comm")
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(string(b), "\n"), nil
}

// Exe returns the path of the process's executable (the /proc/pid/exe link).
func Exe(pid int) (string, error) {
	p, err := os.Readlink(path(pid, "exe"))
	if err != nil {
		return "", procErr(pid, err)
	}
	return p, nil
}
