package preload

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"ulp/internal/regfile"
	"ulp/livepatch/elfsym"
)

// ErrUnsafeRoot: the root folder (or its etc folder) is a symbolic link,
// is not owned by root (or the caller), or is writable by group or others:
// another user could redirect what root writes there.
var ErrUnsafeRoot = errors.New("unsafe root folder")

// A Manager with a Root other than "/" manages an image or container root
// that root may not own the contents of: every path beneath it is opened
// with openat2 RESOLVE_IN_ROOT (a symbolic link resolves inside the root,
// never out of it), the list is written in the etc folder opened that way
// (a temporary file, renamed over the list, both relative to that folder),
// and the runtime is checked without running it (checkStatic): nothing of
// the root's runs as root.

// rooted reports whether m manages a root other than this host's "/".
func (m Manager) rooted() bool { return m.Root != "" && m.Root != "/" }

// openRoot opens m.Root after checking it is a folder owned by root or the
// caller and not writable by group or others.
func (m Manager) openRoot() (*os.File, error) {
	fi, err := os.Lstat(m.Root)
	if err != nil {
		return nil, err
	}
	if err := safeDir(m.Root, fi); err != nil {
		return nil, err
	}
	return os.OpenFile(m.Root, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
}

// safeDir checks a folder the agent writes beneath.
func safeDir(name string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("%w: %s is not a folder (%s)", ErrUnsafeRoot, name, fi.Mode().Type())
	case !ok || st.Uid != 0 && int(st.Uid) != os.Geteuid():
		return fmt.Errorf("%w: %s is owned by uid %d", ErrUnsafeRoot, name, st.Uid)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("%w: %s is writable by group or others (mode %#o)", ErrUnsafeRoot, name, fi.Mode().Perm())
	}
	return nil
}

// openIn opens path beneath the root folder dir, resolving it as if dir
// were "/".
func openIn(dir *os.File, path string, flags int) (*os.File, error) {
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	fd, err := unix.Openat2(int(dir.Fd()), path, &how)
	for errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
		fd, err = unix.Openat2(int(dir.Fd()), path, &how)
	}
	if err != nil {
		return nil, &fs.PathError{Op: "openat2", Path: filepath.Join(dir.Name(), path), Err: err}
	}
	return os.NewFile(uintptr(fd), filepath.Join(dir.Name(), path)), nil
}

// openRegularIn opens for reading the regular file at path beneath dir (a
// device or a FIFO is never opened: regfile.Reopen).
func openRegularIn(dir *os.File, path string) (*os.File, fs.FileInfo, error) {
	pf, err := openIn(dir, path, unix.O_PATH)
	if err != nil {
		return nil, nil, err
	}
	defer pf.Close()
	return regfile.Reopen(pf)
}

// readRooted reads path beneath the root (a regular file); a missing file
// reads as nil.
func (m Manager) readRooted(path string) ([]byte, error) {
	root, err := m.openRoot()
	if err != nil {
		return nil, err
	}
	defer root.Close()
	f, _, err := openRegularIn(root, path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 1<<20))
}

// existsRooted reports whether path exists beneath the root.
func (m Manager) existsRooted(path string) bool {
	root, err := m.openRoot()
	if err != nil {
		return false
	}
	defer root.Close()
	f, err := openIn(root, path, unix.O_PATH)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// etcRooted opens the folder of File beneath the root, checked as safeDir.
func (m Manager) etcRooted() (*os.File, error) {
	root, err := m.openRoot()
	if err != nil {
		return nil, err
	}
	defer root.Close()
	etc, err := openIn(root, filepath.Dir(File), unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	fi, err := etc.Stat()
	if err == nil {
		err = safeDir(etc.Name(), fi)
	}
	if err != nil {
		etc.Close()
		return nil, err
	}
	return etc, nil
}

// writeRooted replaces File beneath the root with b (keeping its mode), or
// removes it when b is nil: a temporary file created in the etc folder,
// synced and renamed over the list, all relative to that open folder.
func (m Manager) writeRooted(b []byte) error {
	etc, err := m.etcRooted()
	if err != nil {
		return err
	}
	defer etc.Close()
	dfd, name := int(etc.Fd()), filepath.Base(File)
	if b == nil {
		if err := unix.Unlinkat(dfd, name, 0); err != nil {
			return &fs.PathError{Op: "unlink", Path: m.Path(File), Err: err}
		}
		return etc.Sync()
	}
	mode := uint32(0o644)
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Mode&unix.S_IFMT == unix.S_IFREG {
		mode = st.Mode & 0o777
	}
	tmp := "." + name + ".tmp-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	fd, err := unix.Openat(dfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return &fs.PathError{Op: "create", Path: filepath.Join(etc.Name(), tmp), Err: err}
	}
	f := os.NewFile(uintptr(fd), filepath.Join(etc.Name(), tmp))
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(fs.FileMode(mode))
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(dfd, tmp, dfd, name)
	}
	if err != nil {
		unix.Unlinkat(dfd, tmp, 0)
		return fmt.Errorf("write %s: %w", m.Path(File), err)
	}
	return etc.Sync()
}

// checkStatic checks, without running it, that runtime beneath the root is
// a regular ELF file defining the runtime's block (ulp_abi): running a
// program with a library of the root preloaded would run the root's code
// as root.
func (m Manager) checkStatic(runtime string) error {
	root, err := m.openRoot()
	if err != nil {
		return err
	}
	defer root.Close()
	f, fi, err := openRegularIn(root, runtime)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotLoadable, err)
	}
	defer f.Close()
	ef, err := elfsym.NewFile(f, fi.Size(), filepath.Base(runtime))
	if err == nil {
		_, err = ef.Lookup("ulp_abi", elfsym.TypeObject)
	}
	if err != nil {
		return fmt.Errorf("%w: %s is not the runtime: %w", ErrNotLoadable, f.Name(), err)
	}
	return nil
}
