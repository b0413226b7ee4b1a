package obj

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"ulp/livepatch/insn"
)

// MaxSize bounds an object file read by Read.
const MaxSize = 256 << 20

// maxRelocs bounds the relocations of one object.
const maxRelocs = 1 << 22

// ErrFormat tags errors of malformed objects.
var ErrFormat = errors.New("malformed object")

// Kind is what a relocation's target is.
type Kind uint8

// Kinds of targets.
const (
	KindFunc   Kind = iota + 1 // a function of the object (name)
	KindVar                    // a named writable variable of the object
	KindTLS                    // a thread-local variable of the object
	KindRO                     // read-only data of the object, identified by content
	KindExtern                 // a symbol the object does not define
)

func (k Kind) String() string {
	switch k {
	case KindFunc:
		return "function"
	case KindVar:
		return "variable"
	case KindTLS:
		return "thread-local variable"
	case KindRO:
		return "read-only data"
	case KindExtern:
		return "external symbol"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Reloc is one relocation inside a function or a data object.
type Reloc struct {
	Off  int // offset in the function or object
	Type elf.R_X86_64
	Kind Kind
	// Name is the target symbol's name; for anonymous read-only data
	// (a string literal, a jump table) it is empty.
	Name string
	// ID identifies the target across compilations: "fn:NAME",
	// "var:NAME", "tls:NAME", "ext:NAME" or "ro:" and a hash of the
	// content.
	ID string
	// Addend is the relocation's addend relative to the start of the
	// target (the named symbol, or the read-only element): the field
	// holds target + Addend (- P for a PC-relative type).
	Addend int64
}

// Size returns the size in bytes of the relocated field.
func (r Reloc) Size() int {
	switch r.Type {
	case elf.R_X86_64_64, elf.R_X86_64_PC64, elf.R_X86_64_GOTOFF64, elf.R_X86_64_DTPOFF64, elf.R_X86_64_TPOFF64, elf.R_X86_64_GOTPC64, elf.R_X86_64_GOTPCREL64, elf.R_X86_64_GOT64, elf.R_X86_64_PLTOFF64, elf.R_X86_64_SIZE64:
		return 8
	case elf.R_X86_64_16, elf.R_X86_64_PC16:
		return 2
	case elf.R_X86_64_8, elf.R_X86_64_PC8:
		return 1
	case elf.R_X86_64_NONE:
		return 0
	}
	return 4
}

// Func is one function of an object.
type Func struct {
	Name    string
	Global  bool // STB_GLOBAL or STB_WEAK
	Section string
	Offset  int // of the function in its section
	Code    []byte
	Relocs  []Reloc
}

// Datum is one named data object of an object.
type Datum struct {
	Name     string
	Global   bool
	Section  string
	Writable bool // in a section written after relocation (.data, .bss; not .data.rel.ro)
	TLS      bool
	Size     int
	Bytes    []byte // nil for .bss and .tbss
	Relocs   []Reloc
	// ID is the identity relocations give read-only data ("ro:" and the
	// hash of its content); empty for writable data.
	ID string
}

// Object is a relocatable object as Read sees it.
type Object struct {
	Funcs []*Func  // sorted by name
	Data  []*Datum // sorted by name
}

// Func returns the function called name, or nil.
func (o *Object) Func(name string) *Func {
	i, ok := slices.BinarySearchFunc(o.Funcs, name, func(f *Func, n string) int { return strings.Compare(f.Name, n) })
	if !ok {
		return nil
	}
	return o.Funcs[i]
}

// Datum returns the data object called name, or nil.
func (o *Object) Datum(name string) *Datum {
	i, ok := slices.BinarySearchFunc(o.Data, name, func(d *Datum, n string) int { return strings.Compare(d.Name, n) })
	if !ok {
		return nil
	}
	return o.Data[i]
}

type section struct {
	s      *elf.Section
	data   []byte // nil for NOBITS
	syms   []int  // indexes into reader.syms of the named symbols defined here, by value
	relocs []rawReloc
}

type rawReloc struct {
	off    uint64
	typ    elf.R_X86_64
	sym    int // index into reader.syms, -1 for none
	addend int64
}

type reader struct {
	ef   *elf.File
	secs []*section // by section index
	syms []elf.Symbol
	ids  map[string]string // memo of content identities, by "sec:start:end"
	size int               // of the file
}

// Read parses the relocatable x86-64 object in data.
func Read(data []byte) (*Object, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrFormat, MaxSize)
	}
	ef, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	if ef.Type != elf.ET_REL || ef.Machine != elf.EM_X86_64 || ef.Class != elf.ELFCLASS64 {
		return nil, fmt.Errorf("%w: not a relocatable x86-64 object", ErrFormat)
	}
	r := &reader{ef: ef, ids: make(map[string]string), size: len(data)}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r.object()
}

func (r *reader) load() error {
	for _, s := range r.ef.Sections {
		if s.Type != elf.SHT_NOBITS && (s.Offset > uint64(r.size) || s.Size > uint64(r.size)-s.Offset) {
			return fmt.Errorf("%w: section %s runs past the file", ErrFormat, s.Name)
		}
	}
	syms, err := r.ef.Symbols()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return fmt.Errorf("%w: symbols: %w", ErrFormat, err)
	}
	r.syms = syms
	r.secs = make([]*section, len(r.ef.Sections))
	for i, s := range r.ef.Sections {
		sec := &section{s: s}
		if s.Type != elf.SHT_NOBITS && s.Flags&elf.SHF_ALLOC != 0 {
			if s.Size > MaxSize {
				return fmt.Errorf("%w: section %s too large", ErrFormat, s.Name)
			}
			if sec.data, err = s.Data(); err != nil {
				return fmt.Errorf("%w: section %s: %w", ErrFormat, s.Name, err)
			}
		}
		r.secs[i] = sec
	}
	for i, sym := range syms {
		if sym.Section == elf.SHN_UNDEF || int(sym.Section) >= len(r.secs) || sym.Name == "" {
			continue
		}
		t := elf.ST_TYPE(sym.Info)
		if t == elf.STT_SECTION || t == elf.STT_FILE {
			continue
		}
		sec := r.secs[sym.Section]
		sec.syms = append(sec.syms, i)
	}
	for _, sec := range r.secs {
		slices.SortStableFunc(sec.syms, func(a, b int) int {
			switch va, vb := r.syms[a].Value, r.syms[b].Value; {
			case va < vb:
				return -1
			case va > vb:
				return 1
			}
			return 0
		})
	}
	total := 0
	for _, s := range r.ef.Sections {
		if s.Type != elf.SHT_RELA {
			continue
		}
		if int(s.Info) >= len(r.secs) || s.Info == 0 {
			return fmt.Errorf("%w: relocation section %s for section %d", ErrFormat, s.Name, s.Info)
		}
		data, err := s.Data()
		if err != nil {
			return fmt.Errorf("%w: section %s: %w", ErrFormat, s.Name, err)
		}
		if len(data)%24 != 0 {
			return fmt.Errorf("%w: relocation section %s of %d bytes", ErrFormat, s.Name, len(data))
		}
		total += len(data) / 24
		if total > maxRelocs {
			return fmt.Errorf("%w: more than %d relocations", ErrFormat, maxRelocs)
		}
		target := r.secs[s.Info]
		for b := data; len(b) > 0; b = b[24:] {
			info := binary.LittleEndian.Uint64(b[8:])
			rr := rawReloc{
				off:    binary.LittleEndian.Uint64(b),
				typ:    elf.R_X86_64(info & 0xffffffff),
				sym:    int(info>>32) - 1,
				addend: int64(binary.LittleEndian.Uint64(b[16:])),
			}
			if rr.sym >= len(r.syms) {
				return fmt.Errorf("%w: relocation in %s names symbol %d of %d", ErrFormat, s.Name, rr.sym+1, len(r.syms))
			}
			target.relocs = append(target.relocs, rr)
		}
		slices.SortFunc(target.relocs, func(a, b rawReloc) int {
			switch {
			case a.off < b.off:
				return -1
			case a.off > b.off:
				return 1
			}
			return 0
		})
	}
	return nil
}

func exec(s *elf.Section) bool { return s.Flags&elf.SHF_EXECINSTR != 0 }
func writable(s *elf.Section) bool {
	return s.Flags&elf.SHF_WRITE != 0 && !strings.HasPrefix(s.Name, ".data.rel.ro")
}
func tls(s *elf.Section) bool { return s.Flags&elf.SHF_TLS != 0 }

func (r *reader) object() (*Object, error) {
	o := &Object{}
	for _, sym := range r.syms {
		if sym.Section == elf.SHN_UNDEF || int(sym.Section) >= len(r.secs) || sym.Name == "" {
			continue
		}
		sec := r.secs[sym.Section]
		t := elf.ST_TYPE(sym.Info)
		if sec.s.Flags&elf.SHF_ALLOC == 0 || t == elf.STT_SECTION || t == elf.STT_FILE {
			continue
		}
		global := elf.ST_BIND(sym.Info) != elf.STB_LOCAL
		if sym.Size > sec.s.Size || sym.Value > sec.s.Size-sym.Size {
			return nil, fmt.Errorf("%w: symbol %q runs past its section %s", ErrFormat, sym.Name, sec.s.Name)
		}
		lo, hi := int(sym.Value), int(sym.Value+sym.Size)
		switch {
		case t == elf.STT_FUNC || (exec(sec.s) && t == elf.STT_NOTYPE && sym.Size > 0):
			if !exec(sec.s) || sec.data == nil {
				return nil, fmt.Errorf("%w: function %q outside an executable section", ErrFormat, sym.Name)
			}
			f := &Func{Name: sym.Name, Global: global, Section: sec.s.Name, Offset: lo, Code: sec.data[lo:hi]}
			var err error
			if f.Relocs, err = r.relocs(sec, lo, hi, f.Code); err != nil {
				return nil, fmt.Errorf("function %s: %w", sym.Name, err)
			}
			o.Funcs = append(o.Funcs, f)
		case t == elf.STT_OBJECT || t == elf.STT_TLS:
			d := &Datum{Name: sym.Name, Global: global, Section: sec.s.Name, Writable: writable(sec.s), TLS: tls(sec.s), Size: hi - lo}
			if sec.data != nil {
				d.Bytes = sec.data[lo:hi]
			}
			var err error
			if d.Relocs, err = r.relocs(sec, lo, hi, nil); err != nil {
				return nil, fmt.Errorf("object %s: %w", sym.Name, err)
			}
			if !d.Writable && !d.TLS {
				if d.ID, err = r.contentID(sec, int64(lo), int64(hi), 0); err != nil {
					return nil, fmt.Errorf("object %s: %w", sym.Name, err)
				}
			}
			o.Data = append(o.Data, d)
		}
	}
	slices.SortStableFunc(o.Funcs, func(a, b *Func) int { return strings.Compare(a.Name, b.Name) })
	slices.SortStableFunc(o.Data, func(a, b *Datum) int { return strings.Compare(a.Name, b.Name) })
	for i := 1; i < len(o.Funcs); i++ {
		if o.Funcs[i].Name == o.Funcs[i-1].Name {
			return nil, fmt.Errorf("%w: two functions named %q", ErrFormat, o.Funcs[i].Name)
		}
	}
	for i := 1; i < len(o.Data); i++ {
		if o.Data[i].Name == o.Data[i-1].Name {
			return nil, fmt.Errorf("%w: two objects named %q", ErrFormat, o.Data[i].Name)
		}
	}
	return o, nil
}

// relocs returns the relocations of sec inside [lo, hi), with identified
// targets. code, when not nil, is the function's code, decoded to find
// where the instruction of a PC-relative field ends.
func (r *reader) relocs(sec *section, lo, hi int, code []byte) ([]Reloc, error) {
	var out []Reloc
	i := sort.Search(len(sec.relocs), func(i int) bool { return sec.relocs[i].off >= uint64(lo) })
	var ends []int // instruction ends of code, decoded once when needed
	for ; i < len(sec.relocs) && sec.relocs[i].off < uint64(hi); i++ {
		rr := sec.relocs[i]
		rel := Reloc{Off: int(rr.off) - lo, Type: rr.typ, Addend: rr.addend}
		if rel.Off+rel.Size() > hi-lo {
			return nil, fmt.Errorf("%w: relocation at %#x runs past the symbol", ErrFormat, rr.off)
		}
		if rr.sym < 0 {
			rel.Kind, rel.ID = KindExtern, "none"
			out = append(out, rel)
			continue
		}
		sym := r.syms[rr.sym]
		if sym.Section == elf.SHN_UNDEF || int(sym.Section) >= len(r.secs) {
			if sym.Name == "" {
				return nil, fmt.Errorf("%w: relocation at %#x against an unnamed undefined symbol", ErrFormat, rr.off)
			}
			rel.Kind, rel.Name, rel.ID = KindExtern, sym.Name, "ext:"+sym.Name
			out = append(out, rel)
			continue
		}
		tsec := r.secs[sym.Section]
		// t is the offset in tsec of the byte the field refers to.
		t := int64(sym.Value) + rr.addend
		if pcRelative(rr.typ) && code != nil {
			if ends == nil {
				ends = insn.Ends(code)
			}
			t += int64(endAfter(ends, rel.Off, rel.Size()) - rel.Off)
		}
		if err := r.identify(&rel, tsec, sym, t, 0); err != nil {
			return nil, err
		}
		out = append(out, rel)
	}
	return out, nil
}

func pcRelative(t elf.R_X86_64) bool {
	switch t {
	case elf.R_X86_64_PC32, elf.R_X86_64_PLT32, elf.R_X86_64_GOTPCREL, elf.R_X86_64_GOTPCRELX, elf.R_X86_64_REX_GOTPCRELX,
		elf.R_X86_64_GOTTPOFF, elf.R_X86_64_TLSGD, elf.R_X86_64_TLSLD, elf.R_X86_64_GOTPC32, elf.R_X86_64_GOTPC32_TLSDESC:
		return true
	}
	return false
}

// identify sets Kind, Name, ID and Addend (rebased) of rel, whose symbol
// sym is defined in tsec and whose field refers to byte t of tsec.
func (r *reader) identify(rel *Reloc, tsec *section, sym elf.Symbol, t int64, depth int) error {
	st := elf.ST_TYPE(sym.Info)
	base := int64(sym.Value)
	if st != elf.STT_SECTION && sym.Name != "" {
		// A named symbol: the field refers to it.
		rel.Name = sym.Name
	} else if n, ok := tsec.named(r, t); ok {
		rel.Name = r.syms[n].Name
		base = int64(r.syms[n].Value)
	}
	rel.Addend = int64(sym.Value) + rel.Addend - base
	switch {
	case exec(tsec.s):
		if rel.Name == "" {
			return fmt.Errorf("%w: reference into code of %s at %#x with no function symbol", ErrFormat, tsec.s.Name, t)
		}
		rel.Kind, rel.ID = KindFunc, "fn:"+rel.Name
	case tls(tsec.s):
		rel.Kind, rel.ID = KindTLS, "tls:"+rel.Name
	case writable(tsec.s):
		if rel.Name == "" {
			rel.Name = tsec.s.Name
			base = 0
			rel.Addend = int64(sym.Value) + rel.Addend - base
		}
		rel.Kind, rel.ID = KindVar, "var:"+rel.Name
	default:
		// Read-only data: its identity is its content.
		start, end := tsec.element(r, t, base, rel.Name != "")
		rel.Kind = KindRO
		rel.Addend += base - start
		id, err := r.contentID(tsec, start, end, depth)
		if err != nil {
			return err
		}
		rel.ID = id
	}
	return nil
}

// named returns the named symbol of sec that covers byte t.
func (sec *section) named(r *reader, t int64) (int, bool) {
	best := -1
	for _, i := range sec.syms {
		s := r.syms[i]
		v := int64(s.Value)
		if v > t {
			break
		}
		if t < v+int64(s.Size) || (s.Size == 0 && v == t) {
			best = i
		}
	}
	return best, best >= 0
}

// element returns the range of read-only data that byte t of sec belongs
// to: the named symbol's extent, the string or the fixed-size entry of a
// mergeable section, else the whole section.
func (sec *section) element(r *reader, t, base int64, named bool) (int64, int64) {
	size := int64(sec.s.Size)
	if named {
		for _, i := range sec.syms {
			if s := r.syms[i]; int64(s.Value) == base && s.Size > 0 {
				return base, base + int64(s.Size)
			}
		}
	}
	if sec.s.Flags&elf.SHF_MERGE != 0 && sec.data != nil && t >= 0 && t < size {
		if sec.s.Flags&elf.SHF_STRINGS != 0 {
			start := t
			for start > 0 && sec.data[start-1] != 0 {
				start--
			}
			end := t
			for end < size && sec.data[end] != 0 {
				end++
			}
			return start, min(end+1, size)
		}
		if es := int64(sec.s.Entsize); es > 0 {
			start := t - t%es
			return start, min(start+es, size)
		}
	}
	return 0, size
}

// contentID hashes bytes [start, end) of sec and the identities of the
// relocations inside them.
func (r *reader) contentID(sec *section, start, end int64, depth int) (string, error) {
	key := fmt.Sprintf("%p:%d:%d", sec, start, end)
	if id, ok := r.ids[key]; ok {
		return id, nil
	}
	if depth > 8 {
		return "ro:deep:" + sec.s.Name, nil
	}
	// Data that refers to itself (through a cycle) is named by place
	// within the cycle; every element is hashed once.
	r.ids[key] = fmt.Sprintf("ro:cycle:%s:%d", sectionKind(sec.s.Name), end-start)
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00", sectionKind(sec.s.Name), end-start)
	if sec.data != nil && start >= 0 && end <= int64(len(sec.data)) && start <= end {
		h.Write(sec.data[start:end])
	}
	i := sort.Search(len(sec.relocs), func(i int) bool { return int64(sec.relocs[i].off) >= start })
	for ; i < len(sec.relocs) && int64(sec.relocs[i].off) < end; i++ {
		rr := sec.relocs[i]
		rel := Reloc{Off: int(int64(rr.off) - start), Type: rr.typ, Addend: rr.addend}
		if rr.sym >= 0 {
			sym := r.syms[rr.sym]
			if sym.Section == elf.SHN_UNDEF || int(sym.Section) >= len(r.secs) {
				rel.ID = "ext:" + sym.Name
			} else if err := r.identify(&rel, r.secs[sym.Section], sym, int64(sym.Value)+rr.addend, depth+1); err != nil {
				return "", err
			}
		}
		fmt.Fprintf(h, "%d %d %s %d\x00", rel.Off, rel.Type, rel.ID, rel.Addend)
	}
	id := "ro:" + hex.EncodeToString(h.Sum(nil)[:12])
	r.ids[key] = id
	return id, nil
}

// sectionKind drops a per-symbol suffix from a section name: .rodata.foo
// and .rodata.bar are both .rodata.
func sectionKind(name string) string {
	for _, p := range []string{".rodata.str", ".rodata.cst", ".data.rel.ro.local", ".data.rel.ro", ".rodata"} {
		if strings.HasPrefix(name, p) {
			return p
		}
	}
	return name
}

// endAfter returns the end of the instruction holding the field [off,
// off+size), or off+size when decoding did not find one.
func endAfter(ends []int, off, size int) int {
	i := sort.SearchInts(ends, off+size)
	if i < len(ends) && ends[i]-off <= 15 {
		return ends[i]
	}
	return off + size
}
