package elfsym

import (
	"bytes"
	"cmp"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"ulp/internal/regfile"
	"ulp/livepatch/insn"
)

// Bounds on an ELF file, which is not trusted: a file a process maps (or
// names in its ledger) may be a user's crafted file, such as a sparse 2 GiB
// file named libpulp.so.0 whose headers claim a 2 GiB .symtab. File never
// allocates with what a header claims: it refuses what exceeds these
// bounds and reads the rest in small pieces, so reading a file costs at
// most a few MiB and a time bounded by MaxSymbols.
const (
	// MaxSections bounds the section headers (256 KiB).
	MaxSections = 4096
	// MaxProgs bounds the program headers (56 KiB).
	MaxProgs = 1024
	// MaxSectionNames bounds .shstrtab, read whole.
	MaxSectionNames = 1 << 20
	// MaxSymbols bounds the entries of the symbol tables together (48 MiB
	// of .symtab and .dynsym), read 64 KiB at a time.
	MaxSymbols = 1 << 21
	// MaxName bounds one symbol name.
	MaxName = 4096
)

// ErrBounds means an ELF file exceeds a bound of this package or is
// inconsistent (a section past the end of the file).
var ErrBounds = errors.New("ELF file out of bounds")

// ErrNotELF means a file does not start with a little-endian ELF64 header.
var ErrNotELF = errors.New("not a little-endian ELF64 file")

const (
	symSize   = 24 // sizeof(Elf64_Sym)
	symChunk  = symSize * 2730
	pageBytes = 4096
	cachePgs  = 16
)

// Section is one section header of a File.
type Section struct {
	Name   string
	Type   elf.SectionType
	Flags  elf.SectionFlag
	Addr   uint64
	Offset uint64
	Size   uint64
	Link   uint32
}

// Prog is one program header of a File.
type Prog struct {
	Type   elf.ProgType
	Flags  elf.ProgFlag
	Off    uint64
	Vaddr  uint64
	Filesz uint64
	Memsz  uint64
}

// File is an ELF64 little-endian file read within the bounds above: its
// headers are read by NewFile, its symbols on demand, a piece at a time.
// It is the reader of every ELF file a process names.
type File struct {
	Name     string
	Sections []Section
	Progs    []Prog
	r        io.ReaderAt
	size     uint64
	closer   io.Closer
	cache    pageCache
}

// OpenFile opens the ELF file at path, only if it is a regular file
// (regfile.Open: a FIFO or a device a process names is never opened), and
// reads its headers.
func OpenFile(path string) (*File, error) {
	f, fi, err := regfile.Open(path)
	if err != nil {
		return nil, err
	}
	ef, err := NewFile(f, fi.Size(), fi.Name())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ef.closer = f
	return ef, nil
}

// Close closes the file OpenFile opened.
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	return f.closer.Close()
}

// NewFile reads the headers of the ELF file of size bytes in r (which it
// does not own), naming it name.
func NewFile(r io.ReaderAt, size int64, name string) (*File, error) {
	f := &File{Name: name, r: r, size: uint64(max(size, 0))}
	f.cache.r = r
	var h [64]byte
	if err := f.readAt(h[:], 0); err != nil {
		return nil, fmt.Errorf("%w: ELF header: %w", ErrNotELF, err)
	}
	if string(h[:4]) != elf.ELFMAG {
		return nil, fmt.Errorf("%w: no ELF magic", ErrNotELF)
	}
	if elf.Class(h[elf.EI_CLASS]) != elf.ELFCLASS64 || elf.Data(h[elf.EI_DATA]) != elf.ELFDATA2LSB {
		return nil, ErrNotELF
	}
	le := binary.LittleEndian
	phoff, phentsize, phnum := le.Uint64(h[32:]), le.Uint16(h[54:]), uint64(le.Uint16(h[56:]))
	shoff, shentsize, shnum, shstrndx := le.Uint64(h[40:]), le.Uint16(h[58:]), uint64(le.Uint16(h[60:])), uint32(le.Uint16(h[62:]))
	if phnum > 0 {
		if phentsize != 56 || phnum > MaxProgs || !f.within(phoff, phnum*56) {
			return nil, fmt.Errorf("%w: %d program headers of %d bytes at %#x", ErrBounds, phnum, phentsize, phoff)
		}
		b := make([]byte, phnum*56)
		if err := f.readAt(b, phoff); err != nil {
			return nil, fmt.Errorf("program headers: %w", err)
		}
		for i := 0; i < len(b); i += 56 {
			f.Progs = append(f.Progs, Prog{
				Type: elf.ProgType(le.Uint32(b[i:])), Flags: elf.ProgFlag(le.Uint32(b[i+4:])),
				Off: le.Uint64(b[i+8:]), Vaddr: le.Uint64(b[i+16:]),
				Filesz: le.Uint64(b[i+32:]), Memsz: le.Uint64(b[i+40:]),
			})
		}
	}
	if shoff == 0 {
		return f, nil
	}
	if shentsize != 64 {
		return nil, fmt.Errorf("%w: section headers of %d bytes", ErrBounds, shentsize)
	}
	var first [64]byte
	if err := f.readAt(first[:], shoff); err != nil {
		return nil, fmt.Errorf("section headers: %w", err)
	}
	if shnum == 0 { // extended numbering: the count is section 0's sh_size
		shnum = le.Uint64(first[32:])
	}
	if shstrndx == uint32(elf.SHN_XINDEX) {
		shstrndx = le.Uint32(first[40:])
	}
	if shnum > MaxSections || !f.within(shoff, shnum*64) {
		return nil, fmt.Errorf("%w: %d section headers at %#x (at most %d, inside the file's %d bytes)", ErrBounds, shnum, shoff, MaxSections, f.size)
	}
	b := make([]byte, shnum*64)
	if err := f.readAt(b, shoff); err != nil {
		return nil, fmt.Errorf("section headers: %w", err)
	}
	names := make([]uint32, shnum)
	for i := 0; i < len(b); i += 64 {
		s := Section{
			Type: elf.SectionType(le.Uint32(b[i+4:])), Flags: elf.SectionFlag(le.Uint64(b[i+8:])),
			Addr: le.Uint64(b[i+16:]), Offset: le.Uint64(b[i+24:]), Size: le.Uint64(b[i+32:]),
			Link: le.Uint32(b[i+40:]),
		}
		if i > 0 && s.Type != elf.SHT_NOBITS && s.Type != elf.SHT_NULL && !f.within(s.Offset, s.Size) {
			return nil, fmt.Errorf("%w: section %d of %d bytes at %#x runs past the end of the file (%d bytes)", ErrBounds, i/64, s.Size, s.Offset, f.size)
		}
		names[i/64] = le.Uint32(b[i:])
		f.Sections = append(f.Sections, s)
	}
	if shstrndx == 0 || uint64(shstrndx) >= shnum {
		return f, nil
	}
	st := f.Sections[shstrndx]
	if st.Size > MaxSectionNames || st.Type != elf.SHT_STRTAB {
		return nil, fmt.Errorf("%w: section names: type %v, %d bytes (at most %d)", ErrBounds, st.Type, st.Size, MaxSectionNames)
	}
	strs := make([]byte, st.Size)
	if err := f.readAt(strs, st.Offset); err != nil {
		return nil, fmt.Errorf("section names: %w", err)
	}
	for i, n := range names {
		if uint64(n) < uint64(len(strs)) {
			if j := bytes.IndexByte(strs[n:], 0); j >= 0 {
				f.Sections[i].Name = string(strs[n : n+uint32(j)])
			}
		}
	}
	return f, nil
}

// within reports whether n bytes at off lie inside the file.
func (f *File) within(off, n uint64) bool {
	return off <= f.size && n <= f.size-off
}

// readAt fills b from offset off, failing short of it.
func (f *File) readAt(b []byte, off uint64) error {
	if !f.within(off, uint64(len(b))) {
		return fmt.Errorf("%w: %d bytes at %#x past the end of the file (%d bytes)", ErrBounds, len(b), off, f.size)
	}
	n, err := f.r.ReadAt(b, int64(off))
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// Section returns the first section called name, or nil.
func (f *File) Section(name string) *Section {
	for i := range f.Sections {
		if f.Sections[i].Name == name {
			return &f.Sections[i]
		}
	}
	return nil
}

// BuildID returns the GNU build-id note of f, from its SHT_NOTE sections or,
// when it has none, its PT_NOTE segments.
func (f *File) BuildID() ([]byte, error) {
	try := func(off, size uint64) ([]byte, error) {
		if !f.within(off, size) {
			return nil, fmt.Errorf("%w: note of %d bytes at %#x", ErrBounds, size, off)
		}
		return noteBuildID(io.NewSectionReader(f.r, int64(off), int64(size)), size, binary.LittleEndian)
	}
	for _, s := range f.Sections {
		if s.Type == elf.SHT_NOTE {
			if id, err := try(s.Offset, s.Size); err != nil || id != nil {
				return id, err
			}
		}
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_NOTE {
			if id, err := try(p.Off, p.Filesz); err != nil || id != nil {
				return id, err
			}
		}
	}
	return nil, ErrNoBuildID
}

// rawSym is one Elf64_Sym, without its name.
type rawSym struct {
	name  uint32
	info  byte
	shndx uint16
	value uint64
	size  uint64
	str   *Section // its string table
}

// eachSymbol calls fn for every defined symbol of a kept type (.symtab
// first, then .dynsym) until fn returns false or an error.
func (f *File) eachSymbol(fn func(s rawSym, typ Type) (bool, error)) error {
	if err := f.checkSymtabs(); err != nil {
		return err
	}
	buf := make([]byte, symChunk)
	le := binary.LittleEndian
	for _, want := range []elf.SectionType{elf.SHT_SYMTAB, elf.SHT_DYNSYM} {
		for i := range f.Sections {
			tab := &f.Sections[i]
			if tab.Type != want {
				continue
			}
			str := &f.Sections[tab.Link]
			n := tab.Size / symSize * symSize
			for off := uint64(0); off < n; off += symChunk {
				b := buf[:min(symChunk, n-off)]
				if err := f.readAt(b, tab.Offset+off); err != nil {
					return fmt.Errorf("symbol table %s: %w", tab.Name, err)
				}
				for j := 0; j < len(b); j += symSize {
					if off == 0 && j == 0 {
						continue // the null symbol
					}
					s := rawSym{name: le.Uint32(b[j:]), info: b[j+4], shndx: le.Uint16(b[j+6:]),
						value: le.Uint64(b[j+8:]), size: le.Uint64(b[j+16:]), str: str}
					typ, ok := symType(elf.ST_TYPE(s.info))
					if s.shndx == uint16(elf.SHN_UNDEF) || s.name == 0 || !ok {
						continue
					}
					more, err := fn(s, typ)
					if err != nil || !more {
						return err
					}
				}
			}
		}
	}
	return nil
}

// checkSymtabs checks the string table of every symbol table and that
// together they hold at most MaxSymbols entries.
func (f *File) checkSymtabs() error {
	var n uint64
	for _, tab := range f.Sections {
		if tab.Type != elf.SHT_SYMTAB && tab.Type != elf.SHT_DYNSYM {
			continue
		}
		if n += tab.Size / symSize; n > MaxSymbols {
			return fmt.Errorf("%w: symbol table %s of %d bytes: more than %d symbols", ErrBounds, tab.Name, tab.Size, MaxSymbols)
		}
		if uint64(tab.Link) >= uint64(len(f.Sections)) || f.Sections[tab.Link].Type != elf.SHT_STRTAB {
			return fmt.Errorf("%w: symbol table %s links to section %d, not a string table", ErrBounds, tab.Name, tab.Link)
		}
	}
	return nil
}

// nameIs reports whether symbol s is called name.
func (f *File) nameIs(s rawSym, name string) (bool, error) {
	if uint64(s.name)+uint64(len(name)) >= s.str.Size {
		return false, nil
	}
	b := make([]byte, len(name)+1)
	if err := f.cache.readAt(b, s.str.Offset+uint64(s.name)); err != nil {
		return false, fmt.Errorf("symbol names: %w", err)
	}
	return b[len(name)] == 0 && string(b[:len(name)]) == name, nil
}

// symbolName reads the name of s, at most MaxName bytes.
func (f *File) symbolName(s rawSym) (string, error) {
	if uint64(s.name) >= s.str.Size {
		return "", fmt.Errorf("%w: symbol name at %#x outside its string table", ErrBounds, s.name)
	}
	b := make([]byte, min(MaxName+1, s.str.Size-uint64(s.name)))
	if err := f.cache.readAt(b, s.str.Offset+uint64(s.name)); err != nil {
		return "", fmt.Errorf("symbol names: %w", err)
	}
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return "", fmt.Errorf("%w: symbol name longer than %d bytes", ErrBounds, MaxName)
	}
	return string(b[:i]), nil
}

// Lookup is Object.Lookup on the symbols of f.
func (f *File) Lookup(name string, types ...Type) (Symbol, error) {
	return f.lookup(name, 0, false, types)
}

// LookupAt is Object.LookupAt on the symbols of f.
func (f *File) LookupAt(name string, off uint64, types ...Type) (Symbol, error) {
	return f.lookup(name, off, true, types)
}

func (f *File) lookup(name string, off uint64, at bool, types []Type) (Symbol, error) {
	// The symbols of that name, at most a few distinct ones, decide as
	// Object.lookup does.
	o := &Object{Name: f.Name}
	err := f.eachSymbol(func(s rawSym, typ Type) (bool, error) {
		if at && s.value != off {
			return true, nil
		}
		ok, err := f.nameIs(s, name)
		if err != nil || !ok {
			return true, err
		}
		sym := Symbol{Name: name, Offset: s.value, Size: s.size, Type: typ, Bind: symBind(elf.ST_BIND(s.info))}
		if !slices.Contains(o.Symbols, sym) {
			o.Symbols = append(o.Symbols, sym)
		}
		return len(o.Symbols) < 64, nil
	})
	if err != nil {
		return Symbol{}, err
	}
	o.Symbols = dedup(o.Symbols)
	return o.lookup(name, off, at, types)
}

// maxDecode bounds the function bytes HasPatchable reads and decodes.
const maxDecode = 64 << 20

// HasPatchable reports whether a function of f can take a patch: it carries
// the entry pad of -fpatchable-function-entry=16,14 (the 20 bytes around
// its entry read), or its entry can take the jump of the entry mechanism
// (the function's bytes, up to 4 KiB, decoded by insn.Check). It stops at
// the first such function. Unlike Object's Entry, it does not rule out a
// branch from another function into the entry: it is for listings, the
// trigger checks the process's code itself.
func (f *File) HasPatchable() (bool, error) {
	var exec []*Section
	for i := range f.Sections {
		s := &f.Sections[i]
		if s.Type == elf.SHT_PROGBITS && s.Flags&elf.SHF_EXECINSTR != 0 && s.Flags&elf.SHF_ALLOC != 0 {
			exec = append(exec, s)
		}
	}
	// Sorted, for a binary search per function (a hostile file may have
	// thousands of sections).
	slices.SortFunc(exec, func(a, b *Section) int { return cmp.Compare(a.Addr, b.Addr) })
	found := false
	budget := maxDecode
	buf := make([]byte, PrePad+pageBytes)
	err := f.eachSymbol(func(s rawSym, typ Type) (bool, error) {
		if typ != TypeFunc {
			return true, nil
		}
		i, _ := slices.BinarySearchFunc(exec, s.value, func(x *Section, v uint64) int { return cmp.Compare(x.Addr, v+1) })
		if i--; i < 0 || s.value-exec[i].Addr >= exec[i].Size {
			return true, nil
		}
		sec := exec[i]
		in := s.value - sec.Addr
		pre := min(in, PrePad)
		n := min(pre+max(s.size, 6), sec.Size-in+pre, uint64(len(buf)))
		if budget -= int(n); budget < 0 {
			return false, fmt.Errorf("%w: more than %d bytes of functions decoded", ErrBounds, maxDecode)
		}
		b := buf[:n]
		if err := f.cache.readAt(b, sec.Offset+in-pre); err != nil {
			return false, fmt.Errorf("section %s: %w", sec.Name, err)
		}
		if found, _, _ = classify(b, int(pre)); found {
			return false, nil
		}
		if s.size == 0 || pre+s.size > uint64(len(b)) {
			return true, nil // not decodable whole here
		}
		_, err := insn.Check(b[pre:])
		found = err == nil
		return !found, nil
	})
	return found, err
}

// pageCache reads a file through a few cached 4 KiB pages: symbol names and
// function entries are read a few bytes at a time, mostly close together.
type pageCache struct {
	r     io.ReaderAt
	pages [cachePgs]struct {
		off  uint64
		n    int
		data [pageBytes]byte
	}
	valid [cachePgs]bool
	next  int
}

// readAt fills b from off, which the caller checked lies in the file.
func (c *pageCache) readAt(b []byte, off uint64) error {
	for len(b) > 0 {
		po := off &^ (pageBytes - 1)
		p := -1
		for i := range c.pages {
			if c.valid[i] && c.pages[i].off == po {
				p = i
				break
			}
		}
		if p < 0 {
			p, c.next = c.next, (c.next+1)%cachePgs
			n, err := c.r.ReadAt(c.pages[p].data[:], int64(po))
			if n == 0 && err != nil {
				c.valid[p] = false
				return err
			}
			c.pages[p].off, c.pages[p].n, c.valid[p] = po, n, true
		}
		pg := &c.pages[p]
		in := int(off - po)
		if in >= pg.n {
			return io.ErrUnexpectedEOF
		}
		k := copy(b, pg.data[in:pg.n])
		b, off = b[k:], off+uint64(k)
	}
	return nil
}

// StdFile is a debug/elf file opened by OpenStd; Close closes the file.
type StdFile struct {
	*elf.File
	f *os.File
}

// OpenStd opens the ELF file at path with debug/elf, only if it is a
// regular file (regfile.Open: a FIFO or a device is never opened) whose
// headers Check accepts, so that debug/elf allocates no more than the file
// holds.
func OpenStd(path string) (*StdFile, error) {
	f, _, err := regfile.Open(path)
	if err != nil {
		return nil, err
	}
	if err := Check(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &StdFile{File: ef, f: f}, nil
}

// Close closes the file.
func (s *StdFile) Close() error { return s.f.Close() }

// Check refuses an ELF file in r that exceeds the bounds of File (its
// headers, and the entries of each symbol table), before a reader that
// reads sections whole (debug/elf) allocates what its headers claim. The
// size of r is taken from its Size or Stat method when it has one.
func Check(r io.ReaderAt) error {
	size := int64(1<<63 - 1)
	switch s := r.(type) {
	case interface{ Size() int64 }:
		size = s.Size()
	case interface{ Stat() (os.FileInfo, error) }:
		if fi, err := s.Stat(); err == nil {
			size = fi.Size()
		}
	}
	f, err := NewFile(r, size, "")
	if err != nil {
		return err
	}
	return f.checkSymtabs()
}
