package elfedit

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
)

// Section is a non-loaded section to embed into an ELF file.
type Section struct {
	Name string
	Data []byte
}

// ELF64 layout constants (System V gABI).
const (
	ehdrSize    = 64
	shdrSize    = 64
	shLoReserve = 0xff00

	offPhoff     = 0x20
	offShoff     = 0x28
	offPhentsize = 0x36
	offPhnum     = 0x38
	offShentsize = 0x3a
	offShnum     = 0x3c
	offShstrndx  = 0x3e

	shName   = 0x00
	shType   = 0x04
	shFlags  = 0x08
	shAddr   = 0x10
	shOffset = 0x18
	shSize   = 0x20
	shLink   = 0x28
	shInfo   = 0x2c
	shAlign  = 0x30
	shEntsz  = 0x38
)

// ErrUnsupported means the file is not a 64-bit little-endian ELF file
// with ordinary section numbering.
var ErrUnsupported = errors.New("unsupported ELF file")

var le = binary.LittleEndian

// AddSections returns a copy of the ELF file in, with each of secs as a
// non-allocated SHT_PROGBITS section. A section that already exists under the
// same name is replaced in place (its index is kept, so symbol tables stay
// valid); new ones are appended. The loaded image does not change: the
// bytes of every segment and of every other section stay where they are.
//
// Layout of the result: the input up to the end of the last segment or
// other section, then the new .shstrtab (only when a new name is needed),
// the section payloads, and a rebuilt section header table. Stale bytes of
// a replaced section or of the old header table at the end of the file are
// dropped, so repacking does not grow the file.
func AddSections(in []byte, secs []Section) ([]byte, error) {
	if len(in) < ehdrSize || string(in[:4]) != elf.ELFMAG {
		return nil, fmt.Errorf("%w: not an ELF file", ErrUnsupported)
	}
	if elf.Class(in[elf.EI_CLASS]) != elf.ELFCLASS64 || elf.Data(in[elf.EI_DATA]) != elf.ELFDATA2LSB {
		return nil, fmt.Errorf("%w: not 64-bit little-endian", ErrUnsupported)
	}
	size := uint64(len(in))
	shoff := le.Uint64(in[offShoff:])
	shnum := uint64(le.Uint16(in[offShnum:]))
	shstrndx := uint64(le.Uint16(in[offShstrndx:]))
	switch {
	case le.Uint16(in[offShentsize:]) != shdrSize:
		return nil, fmt.Errorf("%w: section header size %d", ErrUnsupported, le.Uint16(in[offShentsize:]))
	case shnum == 0:
		return nil, fmt.Errorf("%w: no section headers (or extended numbering)", ErrUnsupported)
	case shstrndx == 0 || shstrndx >= shnum:
		return nil, fmt.Errorf("%w: section name table index %d of %d", ErrUnsupported, shstrndx, shnum)
	case shoff > size || shnum*shdrSize > size-shoff:
		return nil, fmt.Errorf("%w: section headers at %d beyond the file", ErrUnsupported, shoff)
	}
	hdrs := make([][]byte, shnum)
	for i := range hdrs {
		hdrs[i] = bytes.Clone(in[shoff+uint64(i)*shdrSize:][:shdrSize])
	}
	strs := hdrs[shstrndx]
	if elf.SectionType(le.Uint32(strs[shType:])) != elf.SHT_STRTAB {
		return nil, fmt.Errorf("%w: section name table is not SHT_STRTAB", ErrUnsupported)
	}
	shstr, err := fileRange(in, le.Uint64(strs[shOffset:]), le.Uint64(strs[shSize:]))
	if err != nil {
		return nil, fmt.Errorf("section name table: %w", err)
	}
	index := make(map[string]int) // section name -> index, for the names we write
	for _, s := range secs {
		index[s.Name] = -1
	}
	for i, h := range hdrs {
		if i == 0 {
			continue
		}
		name, ok := cstring(shstr, le.Uint32(h[shName:]))
		if !ok {
			return nil, fmt.Errorf("%w: section %d has a bad name offset", ErrUnsupported, i)
		}
		if j, want := index[name]; want && j < 0 {
			index[name] = i
		}
	}

	// keep: everything the loaded image or another section needs.
	keep := uint64(ehdrSize)
	phoff, phentsize, phnum := le.Uint64(in[offPhoff:]), uint64(le.Uint16(in[offPhentsize:])), uint64(le.Uint16(in[offPhnum:]))
	if phnum > 0 {
		if phentsize < 56 || phoff > size || phnum*phentsize > size-phoff {
			return nil, fmt.Errorf("%w: program headers beyond the file", ErrUnsupported)
		}
		keep = max(keep, phoff+phnum*phentsize)
		for i := range phnum {
			p := in[phoff+i*phentsize:]
			off, filesz := le.Uint64(p[8:]), le.Uint64(p[32:])
			if off > size || filesz > size-off {
				return nil, fmt.Errorf("%w: segment %d beyond the file", ErrUnsupported, i)
			}
			keep = max(keep, off+filesz)
		}
	}
	replaced := make(map[int]bool)
	for _, i := range index {
		if i > 0 {
			replaced[i] = true
		}
	}
	for i, h := range hdrs {
		t := elf.SectionType(le.Uint32(h[shType:]))
		if i == 0 || replaced[i] || t == elf.SHT_NOBITS || t == elf.SHT_NULL {
			continue
		}
		off, sz := le.Uint64(h[shOffset:]), le.Uint64(h[shSize:])
		if _, err := fileRange(in, off, sz); err != nil {
			return nil, fmt.Errorf("section %d: %w", i, err)
		}
		keep = max(keep, off+sz)
	}

	out := bytes.Clone(in[:keep])
	var newNames []byte
	for _, s := range secs {
		if index[s.Name] < 0 {
			newNames = append(newNames, s.Name...)
			newNames = append(newNames, 0)
		}
	}
	nameOff := uint64(len(shstr))
	if len(newNames) > 0 {
		if uint64(len(shstr))+uint64(len(newNames)) > 1<<32-1 {
			return nil, fmt.Errorf("%w: section name table too large", ErrUnsupported)
		}
		le.PutUint64(strs[shOffset:], uint64(len(out)))
		le.PutUint64(strs[shSize:], uint64(len(shstr)+len(newNames)))
		out = append(out, shstr...)
		out = append(out, newNames...)
	}
	for _, s := range secs {
		h := make([]byte, shdrSize)
		if i := index[s.Name]; i > 0 {
			h = hdrs[i]
		} else {
			le.PutUint32(h[shName:], uint32(nameOff))
			nameOff += uint64(len(s.Name)) + 1
			hdrs = append(hdrs, h)
		}
		le.PutUint32(h[shType:], uint32(elf.SHT_PROGBITS))
		le.PutUint64(h[shFlags:], 0)
		le.PutUint64(h[shAddr:], 0)
		le.PutUint64(h[shOffset:], uint64(len(out)))
		le.PutUint64(h[shSize:], uint64(len(s.Data)))
		le.PutUint32(h[shLink:], 0)
		le.PutUint32(h[shInfo:], 0)
		le.PutUint64(h[shAlign:], 1)
		le.PutUint64(h[shEntsz:], 0)
		out = append(out, s.Data...)
	}
	if len(hdrs) >= shLoReserve {
		return nil, fmt.Errorf("%w: too many sections", ErrUnsupported)
	}
	for len(out)%8 != 0 {
		out = append(out, 0)
	}
	le.PutUint64(out[offShoff:], uint64(len(out)))
	le.PutUint16(out[offShnum:], uint16(len(hdrs)))
	for _, h := range hdrs {
		out = append(out, h...)
	}
	return out, nil
}

func fileRange(in []byte, off, size uint64) ([]byte, error) {
	if off > uint64(len(in)) || size > uint64(len(in))-off {
		return nil, fmt.Errorf("%w: range %#x+%#x beyond the file", ErrUnsupported, off, size)
	}
	return in[off : off+size], nil
}

func cstring(tab []byte, off uint32) (string, bool) {
	if uint64(off) >= uint64(len(tab)) {
		return "", false
	}
	n := bytes.IndexByte(tab[off:], 0)
	if n < 0 {
		return "", false
	}
	return string(tab[off : off+uint32(n)]), true
}
