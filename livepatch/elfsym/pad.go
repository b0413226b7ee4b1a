package elfsym

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"slices"

	"ulp/livepatch/insn"
)

// Layout of the entry pad of -fpatchable-function-entry=16,14.
const (
	// PrePad is the number of NOP bytes before the function entry.
	PrePad = 14
	// maxExecSection bounds one executable section read for pad detection.
	maxExecSection = 1 << 30
)

// PadSite is one padded function entry in an ELF file, as `ulp post` needs
// it.
type PadSite struct {
	Name        string // one symbol at this entry
	Offset      uint64 // st_value of the function
	FileOffset  int64  // file offset of the function entry
	EntryOffset uint8  // 0, or 4 after endbr64: where the two NOP bytes are
	Merged      bool   // the two NOP bytes are already the single NOP 66 90
}

// execText caches the executable sections of a file, for pad detection,
// and the direct branch targets of each (insn.Targets), computed when a
// function without the pad is first checked for the entry jump.
type execText struct {
	secs    []*elf.Section
	data    map[*elf.Section][]byte
	targets map[*elf.Section][]int
}

// branchInto returns the offset in sec of a direct branch target of the
// section inside (lo, hi), or -1.
func (t *execText) branchInto(sec *elf.Section, data []byte, lo, hi int) int {
	ts, ok := t.targets[sec]
	if !ok {
		ts = insn.Targets(data)
		t.targets[sec] = ts
	}
	i, _ := slices.BinarySearch(ts, lo+1)
	if i < len(ts) && ts[i] < hi {
		return ts[i]
	}
	return -1
}

func newExecText(ef *elf.File) *execText {
	t := &execText{data: make(map[*elf.Section][]byte), targets: make(map[*elf.Section][]int)}
	for _, s := range ef.Sections {
		if s.Type == elf.SHT_PROGBITS && s.Flags&elf.SHF_EXECINSTR != 0 && s.Flags&elf.SHF_ALLOC != 0 {
			t.secs = append(t.secs, s)
		}
	}
	return t
}

// at returns the section holding address v, its bytes, and v's index in them.
func (t *execText) at(v uint64) (*elf.Section, []byte, int, error) {
	for _, s := range t.secs {
		if v < s.Addr || v-s.Addr >= s.Size {
			continue
		}
		data, ok := t.data[s]
		if !ok {
			if s.Size > maxExecSection {
				return nil, nil, 0, fmt.Errorf("section %s of %d bytes is too large", s.Name, s.Size)
			}
			var err error
			if data, err = s.Data(); err != nil {
				return nil, nil, 0, fmt.Errorf("read section %s: %w", s.Name, err)
			}
			t.data[s] = data
		}
		return s, data, int(v - s.Addr), nil
	}
	return nil, nil, 0, nil
}

// classify reports whether the function at data[i] carries the entry pad.
func classify(data []byte, i int) (pad bool, entry uint8, merged bool) {
	if i < PrePad {
		return false, 0, false
	}
	for _, b := range data[i-PrePad : i] {
		if b != 0x90 {
			return false, 0, false
		}
	}
	rest := data[i:]
	entry = insn.Endbr(rest)
	rest = rest[entry:]
	switch {
	case bytes.HasPrefix(rest, []byte{0x90, 0x90}):
		return true, entry, false
	case bytes.HasPrefix(rest, []byte{0x66, 0x90}):
		return true, entry, true
	}
	return false, 0, false
}

// markPads sets Pad, Entry, EntryOffset and Refused on the function symbols
// of syms from the bytes of ef: the pad when present, else the entry jump
// when decoding the function (its symbol size) finds it safe.
func markPads(ef *elf.File, syms []Symbol) error {
	text := newExecText(ef)
	for i := range syms {
		s := &syms[i]
		if s.Type != TypeFunc {
			continue
		}
		sec, data, idx, err := text.at(s.Offset)
		if err != nil {
			return err
		}
		if data == nil {
			s.Refused = "not in an executable section"
			continue
		}
		if s.Pad, s.EntryOffset, _ = classify(data, idx); s.Pad {
			continue
		}
		if s.Size == 0 {
			s.Refused = "the symbol has no size, so its code cannot be decoded"
			continue
		}
		if s.Size > uint64(len(data)-idx) {
			s.Refused = "the symbol's size runs past its section"
			continue
		}
		e, err := insn.Check(data[idx : idx+int(s.Size)])
		if err != nil {
			s.Refused = err.Error()
			continue
		}
		// A branch from elsewhere (another function, a .cold part) into
		// the overwritten bytes rules the jump out too.
		lo := idx + int(e.Offset)
		if t := text.branchInto(sec, data, lo, lo+e.Covered); t >= 0 {
			s.Refused = fmt.Sprintf("%v (a branch elsewhere in %s targets +%d)", insn.ErrBranchInto, sec.Name, t-idx)
			continue
		}
		s.Entry, s.EntryOffset = true, e.Offset
	}
	return nil
}

// PadSites returns the distinct padded function entries of the ELF file in r
// (which it does not own), found from the bytes at every function symbol.
func PadSites(r io.ReaderAt) ([]PadSite, error) {
	if err := Check(r); err != nil {
		return nil, err
	}
	ef, err := elf.NewFile(r)
	if err != nil {
		return nil, err
	}
	syms, err := symbols(ef)
	if err != nil {
		return nil, err
	}
	syms = dedup(syms)
	text := newExecText(ef)
	var sites []PadSite
	seen := make(map[uint64]bool)
	for _, s := range syms {
		if s.Type != TypeFunc || seen[s.Offset] {
			continue
		}
		seen[s.Offset] = true
		sec, data, idx, err := text.at(s.Offset)
		if err != nil {
			return nil, err
		}
		if data == nil {
			continue
		}
		pad, entry, merged := classify(data, idx)
		if !pad {
			continue
		}
		sites = append(sites, PadSite{
			Name:        s.Name,
			Offset:      s.Offset,
			FileOffset:  int64(sec.Offset) + int64(idx),
			EntryOffset: entry,
			Merged:      merged,
		})
	}
	return sites, nil
}
