package target

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
)

// Limits on ELF structures read from a process's memory, which is not
// trusted: a hostile or corrupt header must not make the agent allocate.
const (
	maxPhnum    = 256
	maxNoteRead = 4096
	pageSize    = 4096
)

// ehdr is what the agent needs of an ELF64 header.
type ehdr struct {
	typ       elf.Type
	phoff     uint64
	phentsize uint16
	phnum     uint16
}

// parseEhdr checks an x86_64 little-endian ELF64 header and returns the
// program header table's place.
func parseEhdr(b []byte) (ehdr, error) {
	var h ehdr
	if len(b) < 64 {
		return h, fmt.Errorf("%w: ELF header of %d bytes", ErrFormat, len(b))
	}
	if string(b[:4]) != elf.ELFMAG {
		return h, fmt.Errorf("%w: no ELF magic", ErrFormat)
	}
	if elf.Class(b[elf.EI_CLASS]) != elf.ELFCLASS64 || elf.Data(b[elf.EI_DATA]) != elf.ELFDATA2LSB {
		return h, fmt.Errorf("%w: not a little-endian ELF64 object", ErrFormat)
	}
	le := binary.LittleEndian
	h.typ = elf.Type(le.Uint16(b[16:]))
	if m := elf.Machine(le.Uint16(b[18:])); m != elf.EM_X86_64 {
		return h, fmt.Errorf("%w: machine %v", ErrFormat, m)
	}
	h.phoff = le.Uint64(b[32:])
	h.phentsize = le.Uint16(b[54:])
	h.phnum = le.Uint16(b[56:])
	if h.phentsize != 56 || h.phnum == 0 || h.phnum > maxPhnum || h.phoff > 1<<20 {
		return h, fmt.Errorf("%w: program headers: %d entries of %d bytes at %#x", ErrFormat, h.phnum, h.phentsize, h.phoff)
	}
	return h, nil
}

// phdr is one ELF64 program header.
type phdr struct {
	typ    elf.ProgType
	off    uint64
	vaddr  uint64
	filesz uint64
	memsz  uint64
}

func parsePhdrs(b []byte) []phdr {
	le := binary.LittleEndian
	var out []phdr
	for i := 0; i+56 <= len(b); i += 56 {
		out = append(out, phdr{
			typ:    elf.ProgType(le.Uint32(b[i:])),
			off:    le.Uint64(b[i+8:]),
			vaddr:  le.Uint64(b[i+16:]),
			filesz: le.Uint64(b[i+32:]),
			memsz:  le.Uint64(b[i+40:]),
		})
	}
	return out
}

// loadBias returns the bias of an object whose file offset 0 is mapped at
// start: start minus the page-aligned address its first PT_LOAD asks for.
func loadBias(start uint64, phs []phdr) (uint64, error) {
	for _, p := range phs {
		if p.typ != elf.PT_LOAD {
			continue
		}
		if p.off >= pageSize || p.vaddr > start {
			break // the mapping of file offset 0 is not this segment's start
		}
		return start - (p.vaddr &^ (pageSize - 1)), nil
	}
	return 0, fmt.Errorf("%w: no PT_LOAD at file offset 0", ErrFormat)
}

// parseBuildID returns the descriptor of the NT_GNU_BUILD_ID note in b (the
// bytes of a PT_NOTE segment), or nil.
func parseBuildID(b []byte) []byte {
	le := binary.LittleEndian
	for len(b) >= 12 {
		namesz, descsz, typ := uint64(le.Uint32(b)), uint64(le.Uint32(b[4:])), le.Uint32(b[8:])
		b = b[12:]
		nameEnd := align4(namesz)
		descEnd := nameEnd + align4(descsz)
		if nameEnd > uint64(len(b)) || descEnd > uint64(len(b)) {
			return nil
		}
		if typ == 3 && namesz == 4 && bytes.Equal(b[:4], []byte("GNU\x00")) { // NT_GNU_BUILD_ID, <elf.h>
			return bytes.Clone(b[nameEnd : nameEnd+descsz])
		}
		b = b[descEnd:]
	}
	return nil
}

func align4(n uint64) uint64 { return (n + 3) &^ 3 }
