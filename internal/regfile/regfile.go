package regfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// ErrNotRegular means the path names a FIFO, a device, a socket or a
// folder, refused without being opened for reading.
var ErrNotRegular = errors.New("not a regular file")

// Open opens the regular file at path for reading (O_CLOEXEC) and returns
// it with its information.
func Open(path string) (*os.File, fs.FileInfo, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	for errors.Is(err, unix.EINTR) {
		fd, err = unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	pf := os.NewFile(uintptr(fd), path)
	defer pf.Close()
	return Reopen(pf)
}

// Reopen opens for reading the file that pf (opened with O_PATH, which it
// does not close) refers to, when it is a regular file; the file returned
// has pf's name. It is opened blocking: the inode is the regular file
// checked, whose reads never wait on a writer, and a blocking descriptor is
// not offered to the Go runtime's poller (epoll_ctl, and the poller's set
// up on the first file, for nothing: regular files cannot be polled).
func Reopen(pf *os.File) (*os.File, fs.FileInfo, error) {
	fi, err := pf.Stat()
	if err != nil {
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("%s: %w (%s)", pf.Name(), ErrNotRegular, kind(fi.Mode()))
	}
	fd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(int(pf.Fd())), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	for errors.Is(err, unix.EINTR) {
		fd, err = unix.Open("/proc/self/fd/"+strconv.Itoa(int(pf.Fd())), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, nil, &fs.PathError{Op: "open", Path: pf.Name(), Err: err}
	}
	return os.NewFile(uintptr(fd), pf.Name()), fi, nil
}

// kind names the type of a file that is not regular.
func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m.IsDir():
		return "a directory"
	}
	return "mode " + m.String()
}
