package elfsym

import (
	"debug/elf"
	"encoding/binary"
	"fmt"
)

// Segment is one PT_LOAD segment of an object: its extent as offsets from
// the load bias (the st_value space) and its permissions.
type Segment struct {
	Vaddr uint64 `json:"vaddr"`
	Memsz uint64 `json:"memsz"`
	Exec  bool   `json:"exec,omitempty"`
	Write bool   `json:"write,omitempty"`
}

// Contains reports whether the n bytes at off lie inside s.
func (s Segment) Contains(off, n uint64) bool {
	return off >= s.Vaddr && off-s.Vaddr <= s.Memsz && n <= s.Memsz-(off-s.Vaddr)
}

// SegmentAt returns the segment of segs holding the n bytes at off.
func SegmentAt(segs []Segment, off, n uint64) (Segment, bool) {
	for _, s := range segs {
		if s.Contains(off, n) {
			return s, true
		}
	}
	return Segment{}, false
}

func loadSegments(progs []Prog) []Segment {
	var out []Segment
	for _, p := range progs {
		if p.Type == elf.PT_LOAD {
			out = append(out, Segment{Vaddr: p.Vaddr, Memsz: p.Memsz, Exec: p.Flags&elf.PF_X != 0, Write: p.Flags&elf.PF_W != 0})
		}
	}
	return out
}

// Segments returns the PT_LOAD segments of f.
func (f *File) Segments() []Segment { return loadSegments(f.Progs) }

func segmentsOf(ef *elf.File) []Segment {
	var progs []Prog
	for _, p := range ef.Progs {
		progs = append(progs, Prog{Type: p.Type, Flags: p.Flags, Vaddr: p.Vaddr, Memsz: p.Memsz})
	}
	return loadSegments(progs)
}

// FuncStart reports whether a function starts at offset off of f: a
// function symbol (STT_FUNC or STT_GNU_IFUNC) has that value, or, for a
// stripped object, a frame description entry of .eh_frame begins there
// (found by a binary search of .eh_frame_hdr's sorted table).
func (f *File) FuncStart(off uint64) (bool, error) {
	found := false
	err := f.eachSymbol(func(s rawSym, typ Type) (bool, error) {
		found = s.value == off && (typ == TypeFunc || typ == TypeIFunc)
		return !found, nil
	})
	if err != nil || found {
		return found, err
	}
	return f.fdeStart(off)
}

// Pointer encodings of .eh_frame_hdr (DW_EH_PE_*, LSB).
const (
	pePcrelSdata4   = 0x1b
	peUdata4        = 0x03
	peDatarelSdata4 = 0x3b
)

// fdeStart looks for off among the initial locations of .eh_frame_hdr's
// table, in the encoding every x86-64 linker writes (datarel sdata4).
func (f *File) fdeStart(off uint64) (bool, error) {
	h := f.Section(".eh_frame_hdr")
	if h == nil || h.Type == elf.SHT_NOBITS || h.Size < 12 {
		return false, nil
	}
	var hdr [12]byte
	if err := f.cache.readAt(hdr[:], h.Offset); err != nil {
		return false, fmt.Errorf(".eh_frame_hdr: %w", err)
	}
	if hdr[0] != 1 || hdr[1] != pePcrelSdata4 || hdr[2] != peUdata4 || hdr[3] != peDatarelSdata4 {
		return false, nil // another encoding: no answer from it
	}
	n := uint64(binary.LittleEndian.Uint32(hdr[8:]))
	if n > (h.Size-12)/8 {
		return false, fmt.Errorf("%w: .eh_frame_hdr of %d bytes claims %d entries", ErrBounds, h.Size, n)
	}
	var e [4]byte
	var rerr error
	loc := func(i int) uint64 {
		if err := f.cache.readAt(e[:], h.Offset+12+uint64(i)*8); err != nil {
			rerr = err
		}
		return h.Addr + uint64(int64(int32(binary.LittleEndian.Uint32(e[:]))))
	}
	lo, hi := 0, int(n)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if loc(m) < off {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if rerr != nil {
		return false, fmt.Errorf(".eh_frame_hdr: %w", rerr)
	}
	return lo < int(n) && loc(lo) == off, rerr
}
