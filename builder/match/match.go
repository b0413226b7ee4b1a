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
	// funcStarts names the functions the library names, by offset.
	funcStarts map[uint64][]string
	data       []region // allocated sections that are not code
	symtab     *elfsym.Object
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
	ef, err := elfsym.OpenStd(path)
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
	l.funcStarts = make(map[uint64][]string)
	for _, s := range l.symtab.Symbols {
		l.named[s.Name] = append(l.named[s.Name], s)
		if s.Type == elfsym.TypeFunc {
			l.funcStarts[s.Offset] = append(l.funcStarts[s.Offset], s.Name)
		}
	}
	if sn, err := ef.DynString(elf.DT_SONAME); err == nil && len(sn) > 0 {
		l.Soname = sn[0]
	}
	for _, s := range ef.Sections {
		if s.Flags&elf.SHF_ALLOC != 0 && s.Flags&elf.SHF_EXECINSTR == 0 {
			l.data = append(l.data, region{name: s.Name, addr: s.Addr, size: s.Size})
		}
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

// ErrUncorroborated means a function's bytes match the library at one
// place only, but nothing else places it there: not the library's symbols,
// not the other functions of its section, not a reference of a located
// function. A small function can have the bytes of an unrelated one.
var ErrUncorroborated = errors.New("only its bytes place it in the library")

// minAlone is the size from which a function whose bytes match at one
// place only is taken to be there without corroboration.
const minAlone = 48

// Match locates fs in the library.
//
// A function is located when exactly one place of the library has its
// bytes (or one place agrees with what the others located), and that place
// is corroborated: the library names it so, or another function located in
// its section puts its section at the same place, or a located function
// refers to it there. Functions of a section with a corroborated place are
// then looked for where their offsets put them (the linker keeps an input
// section whole).
func (l *Lib) Match(fs []*obj.Func) *Result {
	tmp := newResult()
	accepted := make(map[string]candidate)
	pending := make(map[string][]candidate)
	at := make(map[string][]string) // the object's names at each place
	key := func(f *obj.Func) string { return fmt.Sprintf("%s+%d", f.Section, f.Offset) }
	byName := make(map[string]*obj.Func, len(fs))
	for _, f := range fs {
		at[key(f)] = append(at[key(f)], f.Name)
		byName[f.Name] = f
	}
	for _, f := range fs {
		cands, miss := l.candidates(f, at[key(f)])
		if miss != nil {
			tmp.Missed[f.Name] = miss
			continue
		}
		pending[f.Name] = cands
	}
	// Accept unique matches, then narrow ambiguous ones by what the
	// accepted ones located, until nothing changes.
	for progress := true; progress && len(pending) > 0; {
		progress = false
		for _, n := range sortedNames(pending) {
			cands := slices.DeleteFunc(slices.Clone(pending[n]), func(c candidate) bool { return !tmp.consistent(n, c) })
			switch len(cands) {
			case 0:
				tmp.Missed[n] = &MissError{Func: n, Reason: ErrConflict}
				delete(pending, n)
				progress = true
			case 1:
				tmp.accept(n, cands[0])
				accepted[n] = cands[0]
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
	res := newResult()
	corroborate := func(n string, c candidate) {
		accepted[n] = c
		res.accept(n, c)
		delete(pending, n)
		delete(tmp.Missed, n)
	}
	votes := make(map[string]map[int64][]string) // section -> base -> functions
	for _, n := range sortedNames(accepted) {
		c, f := accepted[n], byName[n]
		if l.namedAt(n, c.off) {
			corroborate(n, c)
		}
		if votes[f.Section] == nil {
			votes[f.Section] = make(map[int64][]string)
		}
		b := int64(c.off) - int64(f.Offset)
		votes[f.Section][b] = append(votes[f.Section][b], n)
	}
	for _, sec := range sortedNames(votes) {
		for _, names := range votes[sec] {
			if len(names) >= 2 {
				for _, n := range names {
					corroborate(n, accepted[n])
				}
			}
		}
	}
	// A section none of whose functions is placed yet: the place where
	// most of its functions match at once (a unique one, for two or more
	// functions) places them all.
	placed := make(map[string]bool)
	for n := range res.Funcs {
		placed[byName[n].Section] = true
	}
	sections := make(map[string][]*obj.Func)
	for _, f := range fs {
		if !placed[f.Section] {
			sections[f.Section] = append(sections[f.Section], f)
		}
	}
	for _, sec := range sortedNames(sections) {
		members := sections[sec]
		if len(members) < 2 {
			continue
		}
		bases := make(map[int64]bool)
		for _, f := range members {
			cs := pending[f.Name]
			if c, ok := accepted[f.Name]; ok {
				cs = []candidate{c}
			}
			for _, c := range cs {
				bases[int64(c.off)-int64(f.Offset)] = true
			}
		}
		best, bestN, tie := int64(0), 0, false
		for b := range bases {
			n := 0
			for _, f := range members {
				if code := l.code(uint64(b+int64(f.Offset)), len(f.Code)); code != nil {
					if _, bad := l.compare(f, code, uint64(b+int64(f.Offset))); bad < 0 {
						n++
					}
				}
			}
			switch {
			case n > bestN:
				best, bestN, tie = b, n, false
			case n == bestN:
				tie = true
			}
		}
		if bestN < 2 || tie {
			continue
		}
		for _, f := range members {
			off := uint64(best + int64(f.Offset))
			if code := l.code(off, len(f.Code)); code != nil {
				if refs, bad := l.compare(f, code, off); bad < 0 {
					if c := (candidate{off: off, refs: refs}); res.consistent(f.Name, c) {
						corroborate(f.Name, c)
					}
				}
			}
		}
	}
	for changed := true; changed; {
		changed = false
		// References of corroborated functions to other functions.
		for _, n := range sortedNames(res.Funcs) {
			for _, rf := range accepted[n].refs {
				x, ok := strings.CutPrefix(rf.id, "fn:")
				if c, acc := accepted[x]; ok && acc && rf.place.Via == Direct && c.off == rf.place.Off {
					if _, done := res.Funcs[x]; !done {
						corroborate(x, c)
						changed = true
					}
				}
			}
		}
		// The other functions of a section with a corroborated place.
		base := make(map[string]int64)
		for n, off := range res.Funcs {
			f := byName[n]
			base[f.Section] = int64(off) - int64(f.Offset)
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
				if c := (candidate{off: off, refs: refs}); res.consistent(f.Name, c) {
					corroborate(f.Name, c)
					changed = true
				}
			}
		}
	}
	for n, e := range tmp.Missed {
		res.Missed[n] = e
	}
	for n, c := range accepted {
		if _, ok := res.Funcs[n]; ok {
			continue
		}
		if len(byName[n].Code) >= minAlone && res.consistent(n, c) {
			// Long enough that equal bytes are its own code (the file has
			// no other function to corroborate it).
			res.accept(n, c)
			continue
		}
		res.Missed[n] = &MissError{Func: n, Reason: ErrUncorroborated, Detail: fmt.Sprintf("at %#x", c.off)}
	}
	for n, cands := range pending {
		offs := make([]string, 0, min(len(cands), 4))
		for _, c := range cands[:min(len(cands), 4)] {
			offs = append(offs, fmt.Sprintf("%#x", c.off))
		}
		res.Missed[n] = &MissError{Func: n, Reason: ErrAmbiguous, Detail: fmt.Sprintf("%d candidates: %s", len(cands), strings.Join(offs, ", "))}
	}
	return res
}

func newResult() *Result {
	return &Result{Funcs: make(map[string]uint64), Refs: make(map[string]map[Via]Place), Missed: make(map[string]error)}
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// namedAt reports whether the library names a function n at off.
func (l *Lib) namedAt(n string, off uint64) bool {
	return slices.ContainsFunc(l.named[n], func(s elfsym.Symbol) bool { return s.Type == elfsym.TypeFunc && s.Offset == off })
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
// the references its relocations locate. aliases are the names the object
// gives f's place.
func (l *Lib) candidates(f *obj.Func, aliases []string) ([]candidate, error) {
	size := uint64(len(f.Code))
	var offs []uint64
	// A function the library names is looked for under that name only:
	// another function of the compiled size is never it.
	named := false
	for _, s := range l.named[f.Name] {
		if s.Type != elfsym.TypeFunc {
			continue
		}
		named = true
		if s.Size == size || s.Size == 0 {
			offs = append(offs, s.Offset)
		}
	}
	if !named {
		// Nor is an unnamed (static) function one that the library names
		// otherwise, unless by one of its aliases in the object.
		for _, off := range l.fdes[size] {
			if names := l.funcStarts[off]; len(names) == 0 || slices.ContainsFunc(names, func(n string) bool { return slices.Contains(aliases, n) }) {
				offs = append(offs, off)
			}
		}
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

// plausible reports whether a located place fits what it is: a GOT entry
// inside the GOT, code inside the code, data inside the data.
func (l *Lib) plausible(k obj.Kind, via Via, off uint64) bool {
	in := func(rs []region) bool { return slices.ContainsFunc(rs, func(r region) bool { return r.has(off) }) }
	switch {
	case via == GOT:
		return in(l.got)
	case via == PLT:
		return true
	case k == obj.KindFunc:
		return in(l.text)
	case k == obj.KindVar || k == obj.KindRO || k == obj.KindTLS:
		return in(l.data)
	}
	return in(l.text) || in(l.data)
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
			if !l.plausible(r.Kind, via, target) {
				return nil, r.Off
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
