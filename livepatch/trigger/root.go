package trigger

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"

	"ulp/livepatch/procfs"
)

// containerPath returns the path under which the process can open the
// container, which the agent knows as r.rep.Patch (absolute). A process in
// a chroot or another mount namespace resolves paths in its own root:
//
//  1. the agent's path, when it names the same file (device and inode)
//     under /proc/PID/root;
//  2. else /proc/AGENT/fd/N, a descriptor the agent holds open until the
//     trigger ends, when the process's root has a /proc that shows the
//     agent and the process may open the agent's descriptors (same user,
//     or CAP_SYS_PTRACE);
//  3. else an error saying why, and what to do.
func (r *run) containerPath() (string, error) {
	want, err := statID(r.rep.Patch)
	if err != nil {
		return "", failed("container: %w", err)
	}
	root := procfs.Root + "/" + strconv.Itoa(r.pid) + "/root"
	if id, err := statID(root + r.rep.Patch); err == nil && id == want {
		return r.rep.Patch, nil
	}
	f, err := os.Open(r.rep.Patch)
	if err != nil {
		return "", failed("container: %w", err)
	}
	r.closers = append(r.closers, f)
	viaFD := fmt.Sprintf("%s/%d/fd/%d", procfs.Root, os.Getpid(), f.Fd())
	id, err := statID(root + viaFD)
	if err != nil || id != want {
		return "", failed("container %s is not visible in the root of process %d (a chroot or another mount namespace) and its root has no /proc showing this agent: copy the container to the same path under %s, or mount /proc there", r.rep.Patch, r.pid, root)
	}
	st, err := procfs.ReadStatus(r.pid)
	if err != nil {
		return "", failed("read status: %w", err)
	}
	const capSysPtrace = 1 << 19
	if fsuid := st.Uid[3]; fsuid != os.Geteuid() && st.CapEff&capSysPtrace == 0 {
		return "", failed("container %s is not visible in the root of process %d (a chroot or another mount namespace), and the process (uid %d) may not open it through %s: copy the container to the same path under %s", r.rep.Patch, r.pid, fsuid, viaFD, root)
	}
	r.log.Debug("container reached through the agent's descriptor", "path", viaFD)
	return viaFD, nil
}

// fileID identifies a file: its device and inode.
type fileID struct{ dev, ino uint64 }

func statID(path string) (fileID, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileID{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, errors.New("no inode")
	}
	return fileID{st.Dev, st.Ino}, nil
}
