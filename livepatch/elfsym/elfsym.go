package elfsym

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"ulp/internal/regfile"
)

// Errors callers branch on.
var (
	// ErrNoBuildID means the object has no GNU build-id note.
	ErrNoBuildID = errors.New("no GNU build-id")
	// ErrNotFound means no defined symbol of the wanted name and type exists.
	ErrNotFound = errors.New("symbol not found")
	// ErrAmbiguous means several symbols of that name have different offsets.
	ErrAmbiguous = errors.New("symbol is ambiguous")
	// ErrBuildIDMismatch means a debuginfo file belongs to another build.
	ErrBuildIDMismatch = errors.New("build-id mismatch")
	// ErrInvalidDump means an `ulp extract` JSON dump is malformed.
	ErrInvalidDump = errors.New("invalid extract dump")
)

// MaxBuildID bounds the length of a build-id accepted from a file.
const MaxBuildID = 255

// DefaultDebugRoot is where distributions install separate debuginfo files,
// under .build-id/xx/rest.debug.
const DefaultDebugRoot = "/usr/lib/debug"

// Type is a symbol type, as written in the extract JSON.
type Type string

// Symbol types kept by elfsym (STT_SECTION and STT_FILE are dropped).
const (
	TypeFunc   Type = "func"
	TypeIFunc  Type = "ifunc"
	TypeObject Type = "object"
	TypeTLS    Type = "tls"
	TypeCommon Type = "common"
	TypeNone   Type = "notype"
)

// Bind is a symbol binding, as written in the extract JSON.
type Bind string

// Symbol bindings.
const (
	BindLocal  Bind = "local"
	BindGlobal Bind = "global"
	BindWeak   Bind = "weak"
	BindUnique Bind = "unique"
)

// Symbol is one defined symbol of an object.
type Symbol struct {
	Name   string
	Offset uint64 // st_value: offset from the load bias (address for ET_EXEC)
	Size   uint64
	Type   Type
	Bind   Bind
	// Pad is set for a function that starts with the entry pad of
	// -fpatchable-function-entry=16,14: 14 NOPs before Offset and two NOP
	// bytes (90 90, or 66 90 after `ulp post`) at Offset+EntryOffset.
	Pad bool
	// Entry is set for a function without the pad whose entry can be
	// overwritten with a 5-byte jmp (container.MechEntry): decoding it
	// (livepatch/insn) found it long enough, with movable first
	// instructions and no branch into them.
	Entry bool
	// EntryOffset is where the redirected bytes start: 0, or 4 when the
	// entry starts with endbr64.
	EntryOffset uint8
	// Refused says why a function has neither the pad nor a usable entry.
	Refused string
}

// Object is the symbol view of one ELF object: its basename, build-id and
// defined symbols, sorted by offset then name.
type Object struct {
	Name    string
	BuildID []byte // empty when the object has none
	Symbols []Symbol
	// Segments are the PT_LOAD segments (nil for a JSON dump that
	// predates them).
	Segments []Segment
}

// LoadOptions tune Load.
type LoadOptions struct {
	// Debuginfo names a separate debuginfo file whose symbols are merged
	// in; its build-id must match the object's.
	Debuginfo string
	// DebugRoot, when set and Debuginfo is not, is searched for
	// DebugRoot/.build-id/xx/rest.debug; a missing file is not an error.
	DebugRoot string
	// Extra are symbols known from elsewhere, merged in as a debuginfo
	// file's are: the functions `ulp build` located in a stripped library
	// by matching their code. Their pad and entry are checked from the
	// object's bytes like any other symbol's.
	Extra []Symbol
}

// Load reads path, an ELF object or an `ulp extract` JSON dump (told apart by
// the ELF magic), and merges a separate debuginfo file as o says.
func Load(path string, o LoadOptions) (*Object, error) {
	f, _, err := regfile.Open(path) // a FIFO or a device is never opened
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var magic [4]byte
	if _, err := f.ReadAt(magic[:], 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if string(magic[:]) != elf.ELFMAG {
		if o.Debuginfo != "" {
			return nil, fmt.Errorf("%s: a debuginfo file applies only to an ELF object", path)
		}
		obj, err := ReadJSON(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return obj, nil
	}
	if err := Check(f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	obj, err := read(ef, filepath.Base(path), o)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return obj, nil
}

// Open reads the ELF object at path, without any debuginfo.
func Open(path string) (*Object, error) {
	f, _, err := regfile.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	obj, err := Read(f, filepath.Base(path))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return obj, nil
}

// Read reads an ELF object from r, which it does not own, naming it name.
func Read(r io.ReaderAt, name string) (*Object, error) {
	if err := Check(r); err != nil {
		return nil, err
	}
	ef, err := elf.NewFile(r)
	if err != nil {
		return nil, err
	}
	return read(ef, name, LoadOptions{})
}

func read(ef *elf.File, name string, o LoadOptions) (*Object, error) {
	obj := &Object{Name: name, Segments: segmentsOf(ef)}
	var err error
	obj.BuildID, err = BuildID(ef)
	if err != nil && !errors.Is(err, ErrNoBuildID) {
		return nil, err
	}
	syms, err := symbols(ef)
	if err != nil {
		return nil, err
	}
	debugPath := o.Debuginfo
	if debugPath == "" && o.DebugRoot != "" && len(obj.BuildID) > 0 {
		p := DebuginfoPath(o.DebugRoot, obj.BuildID)
		if _, err := os.Stat(p); err == nil {
			debugPath = p
		}
	}
	if debugPath != "" {
		dsyms, err := debugSymbols(debugPath, obj.BuildID)
		if err != nil {
			return nil, err
		}
		syms = append(syms, dsyms...)
	}
	for _, s := range o.Extra {
		s.Pad, s.Entry, s.EntryOffset, s.Refused = false, false, 0, ""
		syms = append(syms, s)
	}
	obj.Symbols = dedup(syms)
	if err := markPads(ef, obj.Symbols); err != nil {
		return nil, err
	}
	return obj, nil
}

func debugSymbols(path string, want []byte) ([]Symbol, error) {
	ef, err := OpenStd(path)
	if err != nil {
		return nil, fmt.Errorf("debuginfo: %w", err)
	}
	defer ef.Close()
	got, err := BuildID(ef.File)
	if err != nil {
		return nil, fmt.Errorf("debuginfo %s: %w", path, err)
	}
	if !bytes.Equal(got, want) {
		return nil, fmt.Errorf("debuginfo %s: %w: %x, object has %x", path, ErrBuildIDMismatch, got, want)
	}
	syms, err := symbols(ef.File)
	if err != nil {
		return nil, fmt.Errorf("debuginfo %s: %w", path, err)
	}
	return syms, nil
}

// DebuginfoPath returns where a distribution keeps the debuginfo of the
// object with buildID under root: root/.build-id/xx/rest.debug.
func DebuginfoPath(root string, buildID []byte) string {
	if len(buildID) < 2 {
		return ""
	}
	h := fmt.Sprintf("%x", buildID)
	return filepath.Join(root, ".build-id", h[:2], h[2:]+".debug")
}

// BuildID returns the GNU build-id note of ef, from its SHT_NOTE sections
// or, when it has no section headers, its PT_NOTE segments.
func BuildID(ef *elf.File) ([]byte, error) {
	for _, s := range ef.Sections {
		if s.Type != elf.SHT_NOTE {
			continue
		}
		if id, err := noteBuildID(s.Open(), s.Size, ef.ByteOrder); err != nil || id != nil {
			return id, err
		}
	}
	for _, p := range ef.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		if id, err := noteBuildID(p.Open(), p.Filesz, ef.ByteOrder); err != nil || id != nil {
			return id, err
		}
	}
	return nil, ErrNoBuildID
}

// maxNotes bounds the note area read while looking for the build-id.
const maxNotes = 1 << 20

func noteBuildID(r io.Reader, size uint64, bo binary.ByteOrder) ([]byte, error) {
	if size > maxNotes {
		return nil, fmt.Errorf("note area of %d bytes is too large", size)
	}
	// ReadAll grows with the bytes actually there, not with the stated size.
	data, err := io.ReadAll(io.LimitReader(r, int64(size)))
	if err != nil {
		return nil, fmt.Errorf("read notes: %w", err)
	}
	if uint64(len(data)) != size {
		return nil, fmt.Errorf("read notes: %d of %d bytes", len(data), size)
	}
	for len(data) >= 12 {
		namesz, descsz, typ := bo.Uint32(data), bo.Uint32(data[4:]), bo.Uint32(data[8:])
		data = data[12:]
		// The last note may end without the padding to 4 bytes.
		nameEnd := align4(uint64(namesz))
		if nameEnd+uint64(descsz) > uint64(len(data)) {
			return nil, errors.New("truncated note")
		}
		name := data[:namesz]
		desc := data[nameEnd : nameEnd+uint64(descsz)]
		data = data[min(nameEnd+align4(uint64(descsz)), uint64(len(data))):]
		if typ == ntGNUBuildID && string(name) == "GNU\x00" {
			if len(desc) == 0 || len(desc) > MaxBuildID {
				return nil, fmt.Errorf("build-id of %d bytes, want 1 to %d", len(desc), MaxBuildID)
			}
			return bytes.Clone(desc), nil
		}
	}
	return nil, nil
}

func align4(n uint64) uint64 { return (n + 3) &^ 3 }

// symbols returns the defined symbols of .symtab and .dynsym.
func symbols(ef *elf.File) ([]Symbol, error) {
	var out []Symbol
	for _, get := range []func() ([]elf.Symbol, error){ef.Symbols, ef.DynamicSymbols} {
		syms, err := get()
		if errors.Is(err, elf.ErrNoSymbols) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read symbols: %w", err)
		}
		for _, s := range syms {
			if s.Section == elf.SHN_UNDEF || s.Name == "" {
				continue
			}
			typ, ok := symType(elf.ST_TYPE(s.Info))
			if !ok {
				continue
			}
			out = append(out, Symbol{
				Name:   s.Name,
				Offset: s.Value,
				Size:   s.Size,
				Type:   typ,
				Bind:   symBind(elf.ST_BIND(s.Info)),
			})
		}
	}
	return out, nil
}

func symType(t elf.SymType) (Type, bool) {
	switch t {
	case elf.STT_FUNC:
		return TypeFunc, true
	case elf.STT_GNU_IFUNC:
		return TypeIFunc, true
	case elf.STT_OBJECT:
		return TypeObject, true
	case elf.STT_TLS:
		return TypeTLS, true
	case elf.STT_COMMON:
		return TypeCommon, true
	case elf.STT_NOTYPE:
		return TypeNone, true
	}
	return "", false
}

func symBind(b elf.SymBind) Bind {
	switch b {
	case elf.STB_LOCAL:
		return BindLocal
	case elf.STB_WEAK:
		return BindWeak
	case stbGNUUnique:
		return BindUnique
	}
	return BindGlobal
}

// dedup sorts syms and drops repeats of the same name, offset and type (a
// symbol is usually in both .symtab and .dynsym); the strongest binding wins.
func dedup(syms []Symbol) []Symbol {
	slices.SortFunc(syms, func(a, b Symbol) int {
		if a.Offset != b.Offset {
			if a.Offset < b.Offset {
				return -1
			}
			return 1
		}
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		if c := strings.Compare(string(a.Type), string(b.Type)); c != 0 {
			return c
		}
		return bindRank(b.Bind) - bindRank(a.Bind)
	})
	return slices.CompactFunc(syms, func(a, b Symbol) bool {
		return a.Offset == b.Offset && a.Name == b.Name && a.Type == b.Type
	})
}

func bindRank(b Bind) int {
	switch b {
	case BindGlobal, BindUnique:
		return 2
	case BindWeak:
		return 1
	}
	return 0
}

// Lookup returns the one defined symbol called name whose type is one of
// types. Several symbols at the same offset count as one; several at
// different offsets are ErrAmbiguous (use LookupAt).
func (o *Object) Lookup(name string, types ...Type) (Symbol, error) {
	return o.lookup(name, 0, false, types)
}

// LookupAt is Lookup restricted to the symbol at offset off, for names that
// several local symbols share.
func (o *Object) LookupAt(name string, off uint64, types ...Type) (Symbol, error) {
	return o.lookup(name, off, true, types)
}

func (o *Object) lookup(name string, off uint64, at bool, types []Type) (Symbol, error) {
	var found []Symbol
	var other []Type
	for _, s := range o.Symbols {
		if s.Name != name || (at && s.Offset != off) {
			continue
		}
		if !slices.Contains(types, s.Type) {
			other = append(other, s.Type)
			continue
		}
		if len(found) == 0 || found[len(found)-1].Offset != s.Offset {
			found = append(found, s)
		}
	}
	where := ""
	if at {
		where = fmt.Sprintf(" at offset %#x", off)
	}
	switch {
	case len(found) == 1:
		return found[0], nil
	case len(found) > 1:
		offs := make([]string, len(found))
		for i, s := range found {
			offs[i] = fmt.Sprintf("%#x", s.Offset)
		}
		return Symbol{}, fmt.Errorf("%w: %q in %s is defined at %s", ErrAmbiguous, name, o.Name, strings.Join(offs, ", "))
	case len(other) > 0:
		return Symbol{}, fmt.Errorf("%w: %q%s in %s is of type %s, want %s", ErrNotFound, name, where, o.Name, other[0], joinTypes(types))
	}
	return Symbol{}, fmt.Errorf("%w: no %s %q%s in %s", ErrNotFound, joinTypes(types), name, where, o.Name)
}

func joinTypes(ts []Type) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = string(t)
	}
	return strings.Join(s, " or ")
}

// EntryFuncs counts the distinct function entries of o that have no pad but
// can take the entry jump.
func (o *Object) EntryFuncs() int {
	seen := make(map[uint64]bool)
	n := 0
	for _, s := range o.Symbols {
		if s.Type == TypeFunc && s.Entry && !seen[s.Offset] {
			seen[s.Offset] = true
			n++
		}
	}
	return n
}

// PaddedFuncs counts the distinct function entries of o and how many of them
// carry the entry pad.
func (o *Object) PaddedFuncs() (padded, total int) {
	seen := make(map[uint64]bool)
	for _, s := range o.Symbols {
		if s.Type != TypeFunc || seen[s.Offset] {
			continue
		}
		seen[s.Offset] = true
		total++
		if s.Pad {
			padded++
		}
	}
	return padded, total
}

// Constants debug/elf does not name.
const (
	ntGNUBuildID             = 3  // NT_GNU_BUILD_ID, <elf.h>
	stbGNUUnique elf.SymBind = 10 // STB_GNU_UNIQUE, <elf.h>
)
