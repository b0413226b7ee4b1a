package trigger

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"ulp/livepatch/container"
	"ulp/livepatch/procfs"
	"ulp/livepatch/sign"
)

// capSysPtrace is the bit of CAP_SYS_PTRACE in /proc/PID/status CapEff.
const capSysPtrace = 1 << 19

// testHookBeforeLoad, when set by a test, runs after the container was
// checked and before the process loads it.
var testHookBeforeLoad func()

// checked is the container as the agent opened and checked it: the open
// file that the process loads, and how the kernel names its inode in
// /proc/PID/maps.
type checked struct {
	file  *os.File
	info  fs.FileInfo
	id    fileID
	dev   string // maps "major:minor"
	inode uint64

	viaFD     string // /proc/AGENT/fd/N (containerPath)
	fdVisible bool   // viaFD names the file in the process's root
}

// openContainer opens the container once per session; everything after
// reads, checks and loads that one open file (see containerPath), so
// replacing the path meanwhile changes nothing. With a trust policy, for the
// actions that load code (apply, replace), the file must also be owned by
// root or the agent's user, not writable by group or others, and signed by
// a trusted key ([Session.Verify]).
func (r *run) openContainer() (*container.File, error) {
	e := r.s.open(r.req.Container)
	if e.err != nil {
		return nil, failed("invalid container: %w", e.err)
	}
	if r.req.Action.Loads() {
		if err := r.s.checkSegments(e); err != nil {
			return nil, failed("invalid container: %s: %w", r.req.Container, err)
		}
		if err := r.s.verify(e); err != nil {
			return nil, failed("refused by trust policy %s: %s: %w", r.s.o.Trust.Dir, r.req.Container, err)
		}
		if err := r.s.identify(e); err != nil {
			return nil, failed("container: %w", err)
		}
	}
	ck := *e.ck // this trigger's own viaFD and fdVisible
	r.ck = &ck
	return e.c, nil
}

// mapsIdentity returns the device and inode that /proc/PID/maps shows for a
// mapping of f. The agent maps one page of f and reads its own maps, so the
// comparison with the process's mapping holds on every file system
// (overlayfs included, whose maps show the underlying inode).
func mapsIdentity(f *os.File) (string, uint64, error) {
	b, err := syscall.Mmap(int(f.Fd()), 0, 1, syscall.PROT_READ, syscall.MAP_PRIVATE)
	if err != nil {
		return "", 0, fmt.Errorf("map container: %w", err)
	}
	defer syscall.Munmap(b)
	addr := uint64(uintptr(unsafe.Pointer(&b[0])))
	maps, err := procfs.Maps(os.Getpid())
	if err != nil {
		return "", 0, err
	}
	for _, m := range maps {
		if m.Start == addr {
			return m.Dev, m.Inode, nil
		}
	}
	return "", 0, errors.New("own mapping of the container not found")
}

// held keeps open, for the agent process's lifetime, the descriptors whose
// names /proc/AGENT/fd/N processes were told to load. The dynamic loader
// returns an object already loaded under the same name without opening the
// file, so within one agent process a name must always mean one file: a
// descriptor given out is never closed (its number is never reused), and a
// second trigger of the same file (device and inode, kept alive by the
// descriptor) gets the same name. The numbers stay low, below the 64
// descriptors a process starts with: growing a multithreaded program's
// descriptor table waits for an RCU grace period (docs/performance.md).
// The count is bounded by the distinct container files the agent loads.
var held struct {
	sync.Mutex
	fds map[fileID][]*os.File
}

// maxNames bounds the names one trigger tries for one file: another agent
// process that had the same PID may have had the process load another file
// under the first name (checkLoaded sees it; load then takes the next).
const maxNames = 3

// agentFD returns the i-th held descriptor of the checked file, creating it
// (at the lowest free number) when there are not that many. When that
// fails (no descriptor left), the session's descriptor of the file is held
// instead of being closed when the session ends.
func (r *run) agentFD(i int) int {
	held.Lock()
	defer held.Unlock()
	if held.fds == nil {
		held.fds = make(map[fileID][]*os.File)
	}
	fs := held.fds[r.ck.id]
	for len(fs) <= i {
		f := r.ck.file
		nfd, _, errno := syscall.Syscall(syscall.SYS_FCNTL, f.Fd(), syscall.F_DUPFD_CLOEXEC, 0)
		if errno == 0 {
			f = os.NewFile(nfd, f.Name())
		} else {
			r.log.Debug("dup container descriptor", "err", errno)
		}
		fs = append(fs, f)
		held.fds[r.ck.id] = fs
	}
	return int(fs[i].Fd())
}

// viaAgentFD sets and returns the name /proc/AGENT/fd/N of the i-th held
// descriptor of the checked file.
func (r *run) viaAgentFD(i int) string {
	r.ck.viaFD = fmt.Sprintf("%s/%d/fd/%d", procfs.Root, os.Getpid(), r.agentFD(i))
	return r.ck.viaFD
}

// canOpenAgentFD reports whether the process passes the kernel's check for
// opening /proc/AGENT/fd/N (ptrace read access to the agent): the same
// user and group as the agent, or CAP_SYS_PTRACE.
func (r *run) canOpenAgentFD(st *procfs.Status) bool {
	if st.CapEff&capSysPtrace != 0 {
		return true
	}
	uid, gid := os.Geteuid(), os.Getegid()
	return os.Getuid() == uid && os.Getgid() == gid && st.Uid[3] == uid && st.Gid[3] == gid
}

// safeChain checks that path, seen from root (the process's root folder),
// names the checked file without symbolic links, and that no folder on the
// way can be changed by anyone but root or the agent's user. A sticky folder
// owned by root, such as /tmp, is fine: only an entry's owner may rename it.
func safeChain(root, path string, want fileID) error {
	fi, err := os.Lstat(root + path)
	if err != nil {
		return err
	}
	if id, ok := idOf(fi); !ok || id != want {
		return fmt.Errorf("%s is not the checked file (a symbolic link, or replaced)", path)
	}
	for dir := parent(path); ; dir = parent(dir) {
		di, err := os.Lstat(root + dir)
		if err != nil {
			return err
		}
		if err := sign.CheckSafe(di); err != nil && !(di.Mode()&fs.ModeSticky != 0 && ownedBySelfOrRoot(di)) {
			return fmt.Errorf("folder %s: %w", dir, err)
		}
		if dir == "/" {
			return nil
		}
	}
}

func parent(p string) string {
	for i := len(p) - 1; i > 0; i-- {
		if p[i] == '/' {
			return p[:i]
		}
	}
	return "/"
}

func ownedBySelfOrRoot(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && (st.Uid == 0 || int(st.Uid) == os.Geteuid())
}

// checkLoaded checks that the object the process mapped at bias is the
// checked file: not a file put at the container's path after the check,
// nor another object the loader found under the same name.
func (r *run) checkLoaded(bias uint64) error {
	maps, err := procfs.Maps(r.pid)
	if err != nil {
		return failed("read maps: %w", err)
	}
	for _, m := range maps {
		if m.Start == bias && m.Offset == 0 {
			if m.Dev == r.ck.dev && m.Inode == r.ck.inode {
				return nil
			}
			return failed("the process loaded %s (inode %d), not the checked container %s (inode %d): the file was replaced during the trigger, or the loader returned an object loaded earlier under the same name",
				m.Path, m.Inode, r.rep.Patch, r.ck.inode)
		}
	}
	return failed("no mapping of the container at %#x", bias)
}
