package target

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"ulp/internal/regfile"
	"ulp/livepatch/abi"
	"ulp/livepatch/elfsym"
	"ulp/livepatch/procfs"
)

// suseSymbol is a data object SUSE libpulp's runtime exports (its 512 KiB
// input buffer): a process that maps it runs that runtime, not this one.
const suseSymbol = "__ulp_metadata_buffer"

// exported caches, by device, inode, path and symbol, whether a mapped file
// exports a data object: a whole-host listing asks it of every file mapped
// on the host, most of them in many processes. The agent runs for one
// command; the path in the key keeps a file created later under another
// name with a freed inode number (test folders) from hitting a stale entry.
var exported sync.Map // "dev inode symbol path" → bool

// runtimeMapping returns the mapping of file offset 0 of the runtime in
// maps, the memory map of process pid: a file named libpulp.so.0, else any
// file that exports the runtime's block (abi.Symbol), whatever its name (an
// install that maps libpulp.so.0.0.0 through a libpulp.so.0 link). The
// names are looked at first: opening and reading the files mapped before
// the runtime, to find none of them exports the block, costs most of what
// looking at a process costs.
func runtimeMapping(pid int, maps []procfs.Mapping) (procfs.Mapping, bool) {
	for _, m := range maps {
		if base := m.Base(); m.Offset == 0 && (base == RuntimeName || base == RuntimeName+deletedSuffix) {
			return m, true
		}
	}
	for _, m := range maps {
		if m.Offset == 0 && exports(pid, m, abi.Symbol) {
			return m, true
		}
	}
	return procfs.Mapping{}, false
}

// exports reports whether the file of mapping m of process pid exports the
// data object sym. A file the agent cannot open exports nothing (and is
// asked again next time).
func exports(pid int, m procfs.Mapping, sym string) bool {
	if m.Offset != 0 || m.Inode == 0 || !strings.HasPrefix(m.Path, "/") {
		return false
	}
	key := m.Dev + " " + strconv.FormatUint(m.Inode, 10) + " " + sym + " " + m.Path
	if v, ok := exported.Load(key); ok {
		return v.(bool)
	}
	path := strings.TrimSuffix(m.Path, deletedSuffix)
	for _, p := range []string{
		fmt.Sprintf("%s/%d/map_files/%x-%x", procfs.Root, pid, m.Start, m.End), // needs CAP_SYS_ADMIN
		fmt.Sprintf("%s/%d/root%s", procfs.Root, pid, path),
		path,
	} {
		ok, err := fileExports(p, m.Inode, sym)
		if err == nil {
			exported.Store(key, ok)
			return ok
		}
	}
	return false
}

// fileExports opens path, checks that it is the file with inode ino, and
// looks sym up in its dynamic symbols.
func fileExports(path string, ino uint64, sym string) (bool, error) {
	f, fi, err := regfile.Open(path) // a device a process maps is never opened
	if err != nil {
		return false, err
	}
	defer f.Close()
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || st.Ino != ino {
		return false, fmt.Errorf("%s: not the mapped file", path)
	}
	return elfsym.ExportsObject(f, sym)
}
