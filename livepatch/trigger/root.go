package trigger

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"ulp/livepatch/abi"
	"ulp/livepatch/procfs"
)

// containerPath returns the path under which the process opens the
// container that the agent opened and checked (r.ck). A process resolves
// paths in its own root, which differs from the agent's in a chroot or
// another mount namespace:
//
//  1. /proc/AGENT/fd/N, a descriptor of the checked file that the agent
//     holds open for its lifetime (held), when the process's root has a /proc
//     that shows the agent and the process may open the agent's descriptors
//     (same user, or CAP_SYS_PTRACE): replacing the container's path after
//     the check then changes nothing;
//  2. else the agent's path (pathInRoot);
//  3. else an error saying why, and what to do.
//
// checkLoaded then checks that the object loaded is the checked file.
func (r *run) containerPath() (string, error) {
	st, err := r.status()
	if err != nil {
		return "", failed("read status: %w", err)
	}
	if id, err := statID(r.root() + r.viaAgentFD(0)); err == nil && id == r.ck.id {
		r.ck.fdVisible = true
		if r.canOpenAgentFD(st) {
			r.log.Debug("container reached through the agent's descriptor", "path", r.ck.viaFD)
			return r.ck.viaFD, nil
		}
	}
	return r.pathInRoot(st)
}

// root is the process's root folder as the agent sees it.
func (r *run) root() string { return procfs.Root + "/" + strconv.Itoa(r.pid) + "/root" }

// pathInRoot returns the agent's path (under Options.RootPrefix, when
// set) when it names the checked file (device and inode) under the
// process's root; with a trust policy, only when no folder on the way can
// be changed by anyone but root or the agent's user. Otherwise it says why
// the process cannot reach the file.
func (r *run) pathInRoot(st *procfs.Status) (string, error) {
	root := r.root()
	path := r.rep.Patch
	if r.o.RootPrefix != "" {
		path = filepath.Join(r.o.RootPrefix, path)
	}
	if id, err := statID(root + path); err == nil && id == r.ck.id {
		if r.o.Trust != nil {
			if err := safeChain(root, path, r.ck.id); err != nil {
				return "", failed("refused by trust policy %s: process %d (uid %d) may not open the agent's checked descriptor, and by path: %w",
					r.o.Trust.Dir, r.pid, st.Uid[3], err)
			}
		}
		r.log.Debug("container reached by path", "path", path)
		return path, nil
	}
	if !r.ck.fdVisible {
		return "", failed("container %s is not visible in the root of process %d (a chroot or another mount namespace) and its root has no /proc showing this agent: copy the container to the same path under %s, or mount /proc there", path, r.pid, root)
	}
	return "", failed("container %s is not visible in the root of process %d (a chroot or another mount namespace), and the process (uid %d) may not open it through %s: copy the container to the same path under %s", path, r.pid, st.Uid[3], r.ck.viaFD, root)
}

// fdRefused reports whether the load through path failed because the
// process may not open the agent's descriptor after all: it changed its
// credentials after containerPath looked (a server's worker dropping root
// as it starts). It then returns the path in the process's root to try
// instead, or the error saying why there is none.
func (r *run) fdRefused(path string, err error) (string, bool, error) {
	var ce *callError
	if path != r.ck.viaFD || !errors.As(err, &ce) || ce.Result != abi.EDlopen || !strings.Contains(ce.Msg, "Permission denied") {
		return "", false, nil
	}
	r.log.Debug("the process may not open the agent's descriptor", "err", err)
	st, err := r.status()
	if err != nil {
		return "", true, failed("read status: %w", err)
	}
	p, err := r.pathInRoot(st)
	return p, true, err
}

// fileID identifies a file: its device and inode.
type fileID struct{ dev, ino uint64 }

func statID(path string) (fileID, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileID{}, err
	}
	id, ok := idOf(fi)
	if !ok {
		return fileID{}, errors.New("no inode")
	}
	return id, nil
}

func idOf(fi fs.FileInfo) (fileID, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, false
	}
	return fileID{st.Dev, st.Ino}, true
}

// status returns /proc/PID/status as read once per trigger: the user,
// group and capabilities that decide how the process may open the
// container, and the thread count that chooses how the code is written
// (writeLive). What changes while the trigger runs (state, tracer) is read
// afresh where it is needed.
func (r *run) status() (*procfs.Status, error) {
	if r.st == nil {
		st, err := procfs.ReadStatus(r.pid)
		if err != nil {
			return nil, err
		}
		r.st = st
	}
	return r.st, nil
}
