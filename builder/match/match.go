package match

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"ulp/builder/obj"
	"ulp/livepatch/elfsym"
)

// maxLibSize bounds the library read into memory.
const maxLibSize = 1 << 30

// Via is how the library reaches a symbol.
type Via uint8

// Ways to reach a symbol.
const (
	Direct Via = iota + 1 // the symbol's own address
	PLT                   // a PLT entry that jumps to it
	GOT                   // a GOT entry holding its address (or its TLS offset)
)

func (v Via) String() string {
	switch v {
	case Direct:
		return "direct"
	case PLT:
		return "plt"
	case GOT:
		return "got"
	}
	return "?"
}

// Place is where the library has something: an offset from its load bias.
type Place struct {
	Off  uint64
	Via  Via
	From string // the matched function whose relocation located it
}

// Lib is a shared library opened for matching.
type Lib struct {
	Path    string
	Name    string
	BuildID []byte
	Soname  string
	text    []region
	plt     []region
	got     []region
	fdes    map[uint64][]uint64 // FDE starts by size
	named   map[string][]elfsym.Symbol
	symtab  *elfsym.Object
}

type region struct {
	name       string
	addr, size uint64
	data       []byte
}

func (r region) has(v uint64) bool { return v >= r.addr && v-r.addr < r.size }

// Open reads the library at path. debugRoot, when not empty, is searched
// for its debuginfo by build-id (a second source of names).
func Open(path, debugRoot string) (*Lib, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > maxLibSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxLibSize)
	}
	ef, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer ef.Close()
	if ef.Machine != elf.EM_X86_64 || ef.Class != elf.ELFCLASS64 || ef.Type != elf.ET_DYN {
		return nil, fmt.Errorf("%s is not an x86-64 shared object", path)
	}
	l := &Lib{Path: path, fdes: make(map[uint64][]uint64), named: make(map[string][]elfsym.Symbol)}
	l.symtab, err = elfsym.Load(path, elfsym.LoadOptions{DebugRoot: debugRoot})
	if err != nil {
		return nil, err
	}
	l.Name, l.BuildID = l.symtab.Name, l.symtab.BuildID
	for _, s := range l.symtab.Symbols {
		l.named[s.Name] = append(l.named[s.Name], s)
	}
	if sn, err := ef.DynString(elf.DT_SONAME); err == nil && len(sn) > 0 {
		l.Soname = sn[0]
	}
	for _, s := range ef.Sections {
		if s.Flags&elf.SHF_ALLOC == 0 || s.Type == elf.SHT_NOBITS {
			continue
		}
		switch {
		case s.Name == ".plt" || s.Name == ".plt.sec" || s.Name == ".plt.got":
			l.plt = append(l.plt, region{name: s.Name, addr: s.Addr, size: s.Size})
		case s.Name == ".got" || s.Name == ".got.plt":
			l.got = append(l.got, region{name: s.Name, addr: s.Addr, size: s.Size})
		case s.Flags&elf.SHF_EXECINSTR != 0:
			data, err := s.Data()
			if err != nil {
				return nil, fmt.Errorf("%s: section %s: %w", path, s.Name, err)
			}
			l.text = append(l.text, region{name: s.Name, addr: s.Addr, size: s.Size, data: data})
		case s.Name == ".eh_frame":
			data, err := s.Data()
			if err != nil {
				return nil, fmt.Errorf("%s: section %s: %w", path, s.Name, err)
			}
			fs, err := parseEHFrame(data, s.Addr)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			for _, f := range fs {
				l.fdes[f.size] = append(l.fdes[f.size], f.start)
			}
		}
	}
	for k, v := range l.fdes {
		slices.Sort(v)
		l.fdes[k] = slices.Compact(v)
	}
	return l, nil
}

// Symbols returns the library's symbols (its .symtab, .dynsym and debuginfo).
func (l *Lib) Symbols() *elfsym.Object { return l.symtab }

// code returns the library's bytes [off, off+n) of an executable section.
func (l *Lib) code(off uint64, n int) []byte {
	for _, r := range l.text {
		if r.has(off) && off-r.addr+uint64(n) <= r.size {
			return r.data[off-r.addr : off-r.addr+uint64(n)]
		}
	}
	return nil
}

// InPLT reports whether off is inside the library's PLT.
func (l *Lib) InPLT(off uint64) bool {
	return slices.ContainsFunc(l.plt, func(r region) bool { return r.has(off) })
}

// Result is what Match found.
type Result struct {
	// Funcs is the library offset of each located function.
	Funcs map[string]uint64
	// Refs is where the library has each target that the relocations of
	// the located functions name, by obj.Reloc.ID, then by how it is
	// reached.
	Refs map[string]map[Via]Place
	// Missed says why a function was not located.
	Missed map[string]error
}

// Ref returns where the library has id, reached via v.
func (r *Result) Ref(id string, v Via) (Place, bool) {
	p, ok := r.Refs[id][v]
	return p, ok
}

// Errors of Match, which a *MissError wraps.
var (
	ErrNoMatch   = errors.New("no function of the library has its code")
	ErrAmbiguous = errors.New("several functions of the library have its code")
	ErrConflict  = errors.New("its references disagree with those of other functions")
)

// MissError says why one function was not located.
type MissError struct {
	Func   string
	Reason error
	Detail string
}

func (e *MissError) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("%s: %v", e.Func, e.Reason)
	}
	return fmt.Sprintf("%s: %v (%s)", e.Func, e.Reason, e.Detail)
}

func (e *MissError) Unwrap() error { return e.Reason }

type candidate struct {
	off  uint64
	refs []ref
}

type ref struct {
	id    string
	place Place
}

// Match locates fs in the library.
func (l *Lib) Match(fs []*obj.Func) *Result {
	res := &Result{Funcs: make(map[string]uint64), Refs: make(map[string]map[Via]Place), Missed: make(map[string]error)}
	pending := make(map[string][]candidate)
	for _, f := range fs {
		cands, miss := l.candidates(f)
		if miss != nil {
			res.Missed[f.Name] = miss
			continue
		}
		pending[f.Name] = cands
	}
	byName := make(map[string]*obj.Func, len(fs))
	for _, f := range fs {
		byName[f.Name] = f
	}
	// Accept unique matches, then narrow ambiguous ones by what the
	// accepted ones located, until nothing changes.
	for progress := true; progress && len(pending) > 0; {
		progress = false
		names := make([]string, 0, len(pending))
		for n := range pending {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			cands := slices.DeleteFunc(slices.Clone(pending[n]), func(c candidate) bool { return !res.consistent(n, c) })
			switch len(cands) {
			case 0:
				res.Missed[n] = &MissError{Func: n, Reason: ErrConflict}
				delete(pending, n)
				progress = true
			case 1:
				res.accept(n, cands[0])
				delete(pending, n)
				progress = true
			default:
				if len(cands) < len(pending[n]) {
					pending[n] = cands
					progress = true
				}
			}
		}
	}
	l.infer(fs, res, pending)
	for n, cands := range pending {
		offs := make([]string, 0, min(len(cands), 4))
		for _, c := range cands[:min(len(cands), 4)] {
			offs = append(offs, fmt.Sprintf("%#x", c.off))
		}
		res.Missed[n] = &MissError{Func: n, Reason: ErrAmbiguous, Detail: fmt.Sprintf("%d candidates: %s", len(cands), strings.Join(offs, ", "))}
	}
	return res
}

// infer locates the functions that share a section with a located one:
// the linker keeps an input section whole, so they are where their offsets
// in the section put them. Each is checked like a candidate.
func (l *Lib) infer(fs []*obj.Func, res *Result, pending map[string][]candidate) {
	base := make(map[string]int64)
	for _, f := range fs {
		if off, ok := res.Funcs[f.Name]; ok {
			base[f.Section] = int64(off) - int64(f.Offset)
		}
	}
	for _, f := range fs {
		b, ok := base[f.Section]
		if _, done := res.Funcs[f.Name]; done || !ok {
			continue
		}
		off := uint64(b + int64(f.Offset))
		code := l.code(off, len(f.Code))
		if code == nil {
			continue
		}
		if refs, bad := l.compare(f, code, off); bad < 0 {
			c := candidate{off: off, refs: refs}
			if res.consistent(f.Name, c) {
				res.accept(f.Name, c)
				delete(res.Missed, f.Name)
				delete(pending, f.Name)
			}
		}
	}
}

// consistent reports whether candidate c of function n agrees with what is
// located already: the function itself and every reference.
func (r *Result) consistent(n string, c candidate) bool {
	if p, ok := r.Refs["fn:"+n][Direct]; ok && p.Off != c.off {
		return false
	}
	for _, rf := range c.refs {
		if p, ok := r.Refs[rf.id][rf.place.Via]; ok && p.Off != rf.place.Off {
			return false
		}
	}
	return true
}

func (r *Result) accept(n string, c candidate) {
	r.Funcs[n] = c.off
	r.add("fn:"+n, Place{Off: c.off, Via: Direct, From: n})
	for _, rf := range c.refs {
		r.add(rf.id, rf.place)
	}
}

func (r *Result) add(id string, p Place) {
	m := r.Refs[id]
	if m == nil {
		m = make(map[Via]Place)
		r.Refs[id] = m
	}
	if _, ok := m[p.Via]; !ok {
		m[p.Via] = p
	}
}

// candidates returns the library functions whose bytes match f, each with
// the references its relocations locate.
func (l *Lib) candidates(f *obj.Func) ([]candidate, error) {
	size := uint64(len(f.Code))
	var offs []uint64
	named := false
	for _, s := range l.named[f.Name] {
		if s.Type == elfsym.TypeFunc && (s.Size == size || s.Size == 0) {
			offs = append(offs, s.Offset)
			named = true
		}
	}
	if !named {
		offs = l.fdes[size]
	}
	var out []candidate
	first, firstOff := -1, uint64(0)
	for _, off := range offs {
		code := l.code(off, len(f.Code))
		if code == nil {
			continue
		}
		refs, bad := l.compare(f, code, off)
		if bad >= 0 {
			if bad > first {
				first, firstOff = bad, off
			}
			continue
		}
		out = append(out, candidate{off: off, refs: refs})
	}
	if len(out) > 0 {
		return out, nil
	}
	switch {
	case named:
		return nil, &MissError{Func: f.Name, Reason: ErrNoMatch, Detail: fmt.Sprintf("the library's %s at %#x differs at offset %d of %d: other compiler flags or other source", f.Name, firstOff, first, size)}
	case first >= 0:
		return nil, &MissError{Func: f.Name, Reason: ErrNoMatch, Detail: fmt.Sprintf("%d functions of %d bytes, the closest differs at offset %d (at %#x): other compiler flags or other source", len(offs), size, first, firstOff)}
	}
	if s := l.named[f.Name]; len(s) > 0 {
		return nil, &MissError{Func: f.Name, Reason: ErrNoMatch, Detail: fmt.Sprintf("the library's %s has %d bytes, the compiled one %d: other compiler flags or other source", f.Name, s[0].Size, size)}
	}
	return nil, &MissError{Func: f.Name, Reason: ErrNoMatch, Detail: fmt.Sprintf("no function of %d bytes: other compiler flags or other source, or inlined everywhere", size)}
}

// compare matches f against code, the library's bytes at off. It returns
// the references located, or the first offset that differs.
func (l *Lib) compare(f *obj.Func, code []byte, off uint64) ([]ref, int) {
	skip := make([]bool, len(code))
	var refs []ref
	for _, r := range f.Relocs {
		n := r.Size()
		for i := r.Off; i < r.Off+n && i < len(skip); i++ {
			skip[i] = true
		}
		at := r.Off
		via := Direct
		switch r.Type {
		case elf.R_X86_64_GOTPCRELX, elf.R_X86_64_REX_GOTPCRELX:
			if r.Off < 2 {
				break
			}
			o0, o1 := f.Code[r.Off-2], f.Code[r.Off-1]
			l0, l1 := code[r.Off-2], code[r.Off-1]
			switch {
			case o0 == l0 && o1 == l1:
				via = GOT
			case o0 == 0x8b && l0 == 0x8d && o1 == l1: // mov foo@GOTPCREL -> lea foo
				skip[r.Off-2] = true
			case o0 == 0xff && o1 == 0x15 && l0 == 0x67 && l1 == 0xe8: // call *foo@GOTPCREL -> addr32 call foo
				skip[r.Off-2], skip[r.Off-1] = true, true
			case o0 == 0xff && o1 == 0x25 && l0 == 0xe9 && r.Off+4 <= len(code) && code[r.Off+3] == 0x90: // jmp *foo@GOTPCREL -> jmp foo; nop
				skip[r.Off-2], skip[r.Off-1] = true, true
				at = -1
				v := int64(int32(binary.LittleEndian.Uint32(code[r.Off-1:])))
				refs = append(refs, ref{r.ID, Place{Off: uint64(int64(off) + int64(r.Off) + 3 + v), Via: Direct, From: f.Name}})
			default:
				return nil, r.Off - 2
			}
		case elf.R_X86_64_GOTPCREL, elf.R_X86_64_GOTTPOFF, elf.R_X86_64_TLSGD, elf.R_X86_64_TLSLD:
			via = GOT
		case elf.R_X86_64_PC32, elf.R_X86_64_PLT32:
		default:
			at = -1 // an absolute or unusual field: masked, locates nothing
		}
		if at >= 0 && n == 4 && at+4 <= len(code) {
			v := int64(int32(binary.LittleEndian.Uint32(code[at:])))
			target := uint64(int64(off) + int64(at) + v - r.Addend)
			if via == Direct && r.Kind != obj.KindRO && l.InPLT(target) {
				via = PLT
			}
			refs = append(refs, ref{r.ID, Place{Off: target, Via: via, From: f.Name}})
		}
	}
	for i := range code {
		if !skip[i] && code[i] != f.Code[i] {
			return nil, i
		}
	}
	return refs, -1
}
