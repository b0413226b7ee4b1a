package elfsym

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Bounds on the structures ExportsObject reads from a file, which is not
// trusted.
const (
	maxLookupPhnum   = 256
	maxLookupDynamic = 64 << 10
	maxHashWords     = 1 << 24
	maxChainSteps    = 1 << 20
)

// ExportsObject reports whether the ELF64 little-endian object r defines
// and exports the data object name in its dynamic symbol table, as the
// dynamic loader would find it: through the program headers, PT_DYNAMIC and
// its GNU (else SysV) hash table, reading a few small pieces of the file
// rather than its whole symbol table (a miss is usually decided by the GNU
// hash's Bloom filter). An object without a dynamic symbol table exports
// nothing; a malformed one is an error.
func ExportsObject(r io.ReaderAt, name string) (bool, error) {
	d, err := readDynamic(r)
	if err != nil || d == nil {
		return false, err
	}
	switch {
	case d.gnuHash != 0:
		return d.lookupGNU(name)
	case d.sysvHash != 0:
		return d.lookupSysV(name)
	}
	return false, nil
}

// dynamic is what ExportsObject needs of an object's dynamic section: file
// offsets of the hash tables, the symbol table and the string table.
type dynamic struct {
	r                           io.ReaderAt
	gnuHash, sysvHash           int64
	symtab, strtab              int64
	strsz                       uint64
	loads                       []segment
	haveGNU, haveSysV, haveSyms bool
}

type segment struct{ off, vaddr, filesz uint64 }

var errLookup = errors.New("malformed dynamic symbol table")

func lookupErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errLookup, fmt.Sprintf(format, args...))
}

func readAt(r io.ReaderAt, off int64, n int) ([]byte, error) {
	if off < 0 {
		return nil, lookupErr("offset %d", off)
	}
	b := make([]byte, n)
	if _, err := r.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("%w: read %d bytes at %#x: %w", errLookup, n, off, err)
	}
	return b, nil
}

// readDynamic reads the ELF header, the program headers and PT_DYNAMIC;
// nil for an object without PT_DYNAMIC or without a symbol table.
func readDynamic(r io.ReaderAt) (*dynamic, error) {
	le := binary.LittleEndian
	h, err := readAt(r, 0, 64)
	if err != nil {
		return nil, err
	}
	if string(h[:4]) != "\x7fELF" || h[4] != 2 || h[5] != 1 {
		return nil, lookupErr("not a little-endian ELF64 object")
	}
	phoff, phentsize, phnum := le.Uint64(h[32:]), le.Uint16(h[54:]), le.Uint16(h[56:])
	if phentsize != 56 || phnum > maxLookupPhnum || phoff > 1<<30 {
		return nil, lookupErr("program headers: %d of %d bytes at %#x", phnum, phentsize, phoff)
	}
	ph, err := readAt(r, int64(phoff), int(phnum)*56)
	if err != nil {
		return nil, err
	}
	d := &dynamic{r: r}
	var dynOff, dynSize uint64
	found := false
	for i := 0; i < int(phnum); i++ {
		p := ph[i*56:]
		switch le.Uint32(p) {
		case 1: // PT_LOAD
			d.loads = append(d.loads, segment{off: le.Uint64(p[8:]), vaddr: le.Uint64(p[16:]), filesz: le.Uint64(p[32:])})
		case 2: // PT_DYNAMIC
			dynOff, dynSize, found = le.Uint64(p[8:]), le.Uint64(p[32:]), true
		}
	}
	if !found {
		return nil, nil
	}
	if dynSize > maxLookupDynamic || dynOff > 1<<40 {
		return nil, lookupErr("PT_DYNAMIC of %d bytes at %#x", dynSize, dynOff)
	}
	dyn, err := readAt(r, int64(dynOff), int(dynSize)&^15)
	if err != nil {
		return nil, err
	}
	for i := 0; i+16 <= len(dyn); i += 16 {
		tag, val := le.Uint64(dyn[i:]), le.Uint64(dyn[i+8:])
		var dst *int64
		switch tag {
		case 0: // DT_NULL
			i = len(dyn)
			continue
		case 4: // DT_HASH
			dst, d.haveSysV = &d.sysvHash, true
		case 5: // DT_STRTAB
			dst = &d.strtab
		case 6: // DT_SYMTAB
			dst, d.haveSyms = &d.symtab, true
		case 10: // DT_STRSZ
			d.strsz = val
			continue
		case 0x6ffffef5: // DT_GNU_HASH
			dst, d.haveGNU = &d.gnuHash, true
		default:
			continue
		}
		off, ok := d.fileOffset(val)
		if !ok {
			return nil, lookupErr("dynamic tag %#x: address %#x outside the file's segments", tag, val)
		}
		*dst = off
	}
	if !d.haveSyms || d.strtab == 0 || !d.haveGNU && !d.haveSysV {
		return nil, nil
	}
	return d, nil
}

// fileOffset maps a virtual address to its offset in the file.
func (d *dynamic) fileOffset(v uint64) (int64, bool) {
	for _, s := range d.loads {
		if v >= s.vaddr && v-s.vaddr < s.filesz && s.off+(v-s.vaddr) < 1<<40 {
			return int64(s.off + (v - s.vaddr)), true
		}
	}
	return 0, false
}

func (d *dynamic) u32s(off int64, n uint64) ([]uint32, error) {
	if n > maxHashWords {
		return nil, lookupErr("hash table of %d words", n)
	}
	b, err := readAt(d.r, off, int(n)*4)
	if err != nil {
		return nil, err
	}
	out := make([]uint32, n)
	for i := range out {
		out[i] = binary.LittleEndian.Uint32(b[i*4:])
	}
	return out, nil
}

// matches reports whether dynamic symbol i is a defined data object
// named name.
func (d *dynamic) matches(i uint32, name string) (bool, error) {
	sym, err := readAt(d.r, d.symtab+int64(i)*24, 24)
	if err != nil {
		return false, err
	}
	le := binary.LittleEndian
	stName, info, shndx := le.Uint32(sym), sym[4], le.Uint16(sym[6:])
	if info&0xf != 1 || shndx == 0 { // STT_OBJECT, defined
		return false, nil
	}
	if d.strsz != 0 && uint64(stName)+uint64(len(name)) >= d.strsz {
		return false, nil
	}
	s, err := readAt(d.r, d.strtab+int64(stName), len(name)+1)
	if err != nil {
		return false, nil // a name at the end of the file: not this one
	}
	return string(s[:len(name)]) == name && s[len(name)] == 0, nil
}

// lookupGNU looks name up in the DT_GNU_HASH table.
func (d *dynamic) lookupGNU(name string) (bool, error) {
	hdr, err := d.u32s(d.gnuHash, 4)
	if err != nil {
		return false, err
	}
	nbuckets, symoffset, bloomSize, shift := hdr[0], hdr[1], hdr[2], hdr[3]
	if nbuckets == 0 || bloomSize == 0 || bloomSize > maxHashWords || nbuckets > maxHashWords {
		return false, lookupErr("GNU hash: %d buckets, %d Bloom words", nbuckets, bloomSize)
	}
	h := uint32(5381)
	for i := 0; i < len(name); i++ {
		h = h*33 + uint32(name[i])
	}
	bloomOff := d.gnuHash + 16
	wb, err := readAt(d.r, bloomOff+int64(h/64%bloomSize)*8, 8)
	if err != nil {
		return false, err
	}
	word := binary.LittleEndian.Uint64(wb)
	mask := uint64(1)<<(h%64) | uint64(1)<<((h>>(shift%32))%64)
	if word&mask != mask {
		return false, nil
	}
	bucketsOff := bloomOff + int64(bloomSize)*8
	b, err := d.u32s(bucketsOff+int64(h%nbuckets)*4, 1)
	if err != nil {
		return false, err
	}
	chainsOff := bucketsOff + int64(nbuckets)*4
	for i, steps := b[0], 0; i >= symoffset && i != 0 && steps < maxChainSteps; i, steps = i+1, steps+1 {
		c, err := d.u32s(chainsOff+int64(i-symoffset)*4, 1)
		if err != nil {
			return false, err
		}
		if c[0]|1 == h|1 {
			if ok, err := d.matches(i, name); ok || err != nil {
				return ok, err
			}
		}
		if c[0]&1 != 0 {
			break
		}
	}
	return false, nil
}

// lookupSysV looks name up in the DT_HASH table.
func (d *dynamic) lookupSysV(name string) (bool, error) {
	hdr, err := d.u32s(d.sysvHash, 2)
	if err != nil {
		return false, err
	}
	nbucket, nchain := hdr[0], hdr[1]
	if nbucket == 0 || nbucket > maxHashWords || nchain > maxHashWords {
		return false, lookupErr("SysV hash: %d buckets, %d chains", nbucket, nchain)
	}
	var h uint32
	for i := 0; i < len(name); i++ {
		h = h<<4 + uint32(name[i])
		g := h & 0xf0000000
		h ^= g >> 24
		h &^= g
	}
	b, err := d.u32s(d.sysvHash+8+int64(h%nbucket)*4, 1)
	if err != nil {
		return false, err
	}
	chainsOff := d.sysvHash + 8 + int64(nbucket)*4
	for i, steps := b[0], 0; i != 0 && i < nchain && steps < maxChainSteps; steps++ {
		if ok, err := d.matches(i, name); ok || err != nil {
			return ok, err
		}
		c, err := d.u32s(chainsOff+int64(i)*4, 1)
		if err != nil {
			return false, err
		}
		i = c[0]
	}
	return false, nil
}
