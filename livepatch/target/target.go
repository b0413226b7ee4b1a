package target

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"ulp/livepatch/abi"
	"ulp/livepatch/elfsym"
	"ulp/livepatch/procfs"
)

// RuntimeName is the basename of the runtime a patchable process maps.
const RuntimeName = "libpulp.so.0"

// Errors of this package; test them with errors.Is.
var (
	// ErrNoRuntime: the process does not map the runtime, libpulp.so.0 or
	// any file that exports its block (it was not started with the runtime
	// preloaded).
	ErrNoRuntime = errors.New("libpulp.so.0 not loaded in process")
	// ErrSUSERuntime: the process maps SUSE libpulp's runtime instead, whose
	// interface differs (errors.Is(err, ErrNoRuntime) holds too).
	ErrSUSERuntime = fmt.Errorf("%w: it runs SUSE libpulp's runtime, which this agent does not drive", ErrNoRuntime)
	// ErrFormat: memory or a file of the process did not hold what the
	// layout promises (a bad ELF header, an unknown ledger, ...).
	ErrFormat = errors.New("unexpected data in process")
	// ErrBusy: a sequence counter kept moving, or stayed odd while another
	// agent holds the process (a trigger in progress): retry later.
	ErrBusy = errors.New("data kept changing while read")
)

// Object is one ELF object mapped by a process.
type Object struct {
	Path    string // file path as the process mapped it, without " (deleted)"
	Name    string // basename of Path
	Deleted bool   // the file was removed or replaced on disk after mapping
	Start   uint64 // where file offset 0 is mapped (the ELF header)
	End     uint64 // end of its highest PT_LOAD segment (page aligned)
	Bias    uint64 // load bias: an object's st_value + Bias is its address
	BuildID []byte // from the mapped PT_NOTE; nil when the object has none
	Main    bool   // the process's executable
}

// Contains reports whether addr lies in the object's mapped range.
func (o *Object) Contains(addr uint64) bool { return addr >= o.Start && addr < o.End }

// Process is a process that maps the runtime, seen without stopping it. Its
// fields are a snapshot taken by Open; objects loaded later are not in it.
// A Process holds no resources and its methods only read, so it may be used
// from several goroutines.
type Process struct {
	PID     int
	Comm    string
	Exe     string   // path of the executable
	Objects []Object // in address order
	Runtime *Object  // the runtime (see runtimeMapping), one of Objects
	ABI     uint64   // address of the runtime's ulp_abi block
	maps    []procfs.Mapping
}

// Maps returns the memory map read by Open (shared: not to be modified).
func (p *Process) Maps() []procfs.Mapping { return p.maps }

// Object returns the loaded object whose basename is name, else the one
// whose DT_SONAME is name (a versioned file, libx.so.0.0.0, mapped through
// the link libx.so.0 that the loader and libpulp's containers name it by),
// or nil.
func (p *Process) Object(name string) *Object {
	for i := range p.Objects {
		if p.Objects[i].Name == name {
			return &p.Objects[i]
		}
	}
	for i := range p.Objects {
		if p.soname(&p.Objects[i]) == name {
			return &p.Objects[i]
		}
	}
	return nil
}

// sonames caches the DT_SONAME of mapped files by build-id (else path).
var sonames sync.Map // string → string

// soname returns the DT_SONAME of o's file, "" when it has none or the
// file cannot be read.
func (p *Process) soname(o *Object) string {
	key := "path:" + o.Path
	if len(o.BuildID) > 0 {
		key = "id:" + string(o.BuildID)
	}
	if v, ok := sonames.Load(key); ok {
		return v.(string)
	}
	f, err := p.Symbols(o)
	if err != nil {
		return ""
	}
	defer f.Close()
	name, err := f.Soname()
	if err != nil {
		return ""
	}
	sonames.Store(key, name)
	return name
}

// Main returns the process's executable, or nil if it is not an ELF object
// the agent could read.
func (p *Process) Main() *Object {
	for i := range p.Objects {
		if p.Objects[i].Main {
			return &p.Objects[i]
		}
	}
	return nil
}

// Open inspects process pid: its mapped objects, the runtime and the
// address of ulp_abi. It fails with ErrNoRuntime when the runtime is not
// mapped, procfs.ErrNoProcess when the process is gone, and a permission
// error (errors.Is(err, fs.ErrPermission)) when the caller may not read it.
func Open(pid int) (*Process, error) {
	p, err := Inspect(pid)
	if err != nil {
		return nil, err
	}
	if p.Runtime == nil {
		for _, m := range p.maps {
			if strings.HasPrefix(m.Base(), "libpulp.so") && exports(pid, m, suseSymbol) {
				return nil, fmt.Errorf("pid %d: %w: %s (start it with LD_PRELOAD=/path/to/this ulp's %s)", pid, ErrSUSERuntime, m.Path, RuntimeName)
			}
		}
		return nil, fmt.Errorf("pid %d: %w", pid, ErrNoRuntime)
	}
	p.ABI, err = abiAddress(p)
	if err != nil {
		return nil, fmt.Errorf("pid %d: %w", pid, err)
	}
	return p, nil
}

// Inspect is Open for any process: it does not require the runtime, and
// leaves ABI zero.
func Inspect(pid int) (*Process, error) {
	maps, err := procfs.Maps(pid)
	if err != nil {
		return nil, err
	}
	p := &Process{PID: pid, maps: maps}
	if p.Comm, err = procfs.Comm(pid); err != nil {
		return nil, err
	}
	if p.Exe, err = procfs.Exe(pid); err != nil {
		return nil, err
	}
	p.Exe = strings.TrimSuffix(p.Exe, deletedSuffix)
	if p.Objects, err = objects(pid, maps, p.Exe); err != nil {
		return nil, err
	}
	if m, ok := runtimeMapping(pid, maps); ok {
		for i := range p.Objects {
			if p.Objects[i].Start == m.Start {
				p.Runtime = &p.Objects[i]
			}
		}
	}
	return p, nil
}

const deletedSuffix = " (deleted)"

// objects finds the ELF objects in maps: every file whose offset 0 is
// mapped readable and starts with an ELF header.
func objects(pid int, maps []procfs.Mapping, exe string) ([]Object, error) {
	var out []Object
	for _, m := range maps {
		if m.Offset != 0 || !m.Readable() || !strings.HasPrefix(m.Path, "/") {
			continue
		}
		path := strings.TrimSuffix(m.Path, deletedSuffix)
		o, err := readObject(pid, m)
		if errors.Is(err, ErrFormat) {
			continue // not an ELF object (a data file mapped by the process)
		}
		if err != nil {
			return nil, err
		}
		o.Path, o.Name, o.Deleted = path, filepath.Base(path), path != m.Path
		o.Main = path == exe
		out = append(out, o)
	}
	return out, nil
}

func readObject(pid int, m procfs.Mapping) (Object, error) {
	o := Object{Start: m.Start, End: m.End}
	hb := make([]byte, 64)
	if m.End-m.Start < 64 {
		return o, fmt.Errorf("%w: mapping too small", ErrFormat)
	}
	if err := procfs.ReadMem(pid, m.Start, hb); err != nil {
		return o, err
	}
	h, err := parseEhdr(hb)
	if err != nil {
		return o, err
	}
	pb := make([]byte, int(h.phnum)*int(h.phentsize))
	if h.phoff+uint64(len(pb)) > m.End-m.Start {
		return o, fmt.Errorf("%w: program headers outside the first mapping", ErrFormat)
	}
	if err := procfs.ReadMem(pid, m.Start+h.phoff, pb); err != nil {
		return o, err
	}
	phs := parsePhdrs(pb)
	if o.Bias, err = loadBias(m.Start, phs); err != nil {
		return o, err
	}
	// The object's extent: its PT_LOAD segments, .bss included.
	for _, ph := range phs {
		if end := o.Bias + ph.vaddr + ph.memsz; ph.typ == elf.PT_LOAD && end > o.End && end >= o.Bias {
			o.End = (end + pageSize - 1) &^ (pageSize - 1)
		}
	}
	for _, ph := range phs {
		if ph.typ != elf.PT_NOTE {
			continue
		}
		n := min(ph.filesz, maxNoteRead)
		addr := o.Bias + ph.vaddr
		if n == 0 || !o.Contains(addr) || addr+n > o.End {
			continue
		}
		nb := make([]byte, n)
		if err := procfs.ReadMem(pid, addr, nb); err != nil {
			continue // a note outside readable memory: no build-id from it
		}
		if id := parseBuildID(nb); id != nil {
			o.BuildID = id
			break
		}
	}
	return o, nil
}

// abiAddress finds ulp_abi in the runtime's symbols and adds its load bias.
func abiAddress(p *Process) (uint64, error) {
	if off, ok := cachedABIOffset(p.Runtime.BuildID); ok {
		return p.Runtime.Bias + off, nil
	}
	obj, err := p.Symbols(p.Runtime)
	if err != nil {
		return 0, err
	}
	defer obj.Close()
	sym, err := obj.Lookup(abi.Symbol, elfsym.TypeObject)
	if err != nil {
		return 0, fmt.Errorf("%w: runtime %s: %w", ErrFormat, p.Runtime.Path, err)
	}
	cacheABIOffset(p.Runtime.BuildID, sym.Offset)
	return p.Runtime.Bias + sym.Offset, nil
}

// Symbols opens the ELF file of o (one of p.Objects), to be closed by the
// caller: the file the process mapped when it can be reached through /proc,
// else the file at o.Path, which must then have o's build-id. The file is
// the process's (a user may map any file under any name), so it is read
// within elfsym.File's bounds.
func (p *Process) Symbols(o *Object) (*elfsym.File, error) {
	var lastErr error
	for _, path := range objectFiles(p.PID, o, p.maps) {
		f, err := elfsym.OpenFile(path)
		if err != nil {
			lastErr = err
			continue
		}
		id, err := f.BuildID()
		if err != nil && !errors.Is(err, elfsym.ErrNoBuildID) {
			f.Close()
			lastErr = err
			continue
		}
		if o.BuildID != nil && !slices.Equal(id, o.BuildID) {
			f.Close()
			lastErr = fmt.Errorf("%w: %s: build-id %x differs from the mapped object's %x", ErrFormat, path, id, o.BuildID)
			continue
		}
		f.Name = o.Name
		return f, nil
	}
	return nil, fmt.Errorf("read symbols of %s: %w", o.Path, lastErr)
}

// objectFiles lists where the file of o can be opened, best first: the
// process's own mapping (works for deleted files and other mount
// namespaces, needs privilege), the path in its root, the path here.
func objectFiles(pid int, o *Object, maps []procfs.Mapping) []string {
	var out []string
	for _, m := range maps {
		if m.Start == o.Start {
			out = append(out, fmt.Sprintf("%s/%d/map_files/%x-%x", procfs.Root, pid, m.Start, m.End))
			break
		}
	}
	out = append(out, fmt.Sprintf("%s/%d/root%s", procfs.Root, pid, o.Path))
	if _, err := os.Stat(o.Path); err == nil {
		out = append(out, o.Path)
	}
	return out
}

// ReadABI reads the runtime's block and checks its magic, version and size.
func (p *Process) ReadABI() (*abi.Block, error) {
	b := make([]byte, abi.BlockSize)
	if err := procfs.ReadMem(p.PID, p.ABI, b); err != nil {
		return nil, err
	}
	blk, err := abi.DecodeBlock(b)
	if err != nil {
		return nil, fmt.Errorf("pid %d: %w", p.PID, err)
	}
	return blk, nil
}

// waitRetry sleeps briefly before the next attempt of a seqlock read,
// or returns ctx's error.
func waitRetry(ctx context.Context, attempt int) error {
	if attempt < 8 {
		return ctx.Err() // spin a few times: writers hold the lock for microseconds
	}
	return sleep(ctx, attempt)
}
