package elfsym

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
)

// maxDynamic bounds the .dynamic section Soname reads.
const maxDynamic = 64 << 10

// Soname returns the DT_SONAME of f ("" when it has none): the name the
// dynamic loader knows a library by when a program needs it, which a
// versioned file (libx.so.0.0.0 behind a libx.so.0 link) differs from.
func (f *File) Soname() (string, error) {
	dyn := f.Section(".dynamic")
	if dyn == nil || dyn.Type != elf.SHT_DYNAMIC {
		return "", nil
	}
	if dyn.Size > maxDynamic || int(dyn.Link) >= len(f.Sections) {
		return "", fmt.Errorf("%w: .dynamic of %d bytes, string table %d", ErrBounds, dyn.Size, dyn.Link)
	}
	b := make([]byte, dyn.Size&^15)
	if err := f.readAt(b, dyn.Offset); err != nil {
		return "", err
	}
	strtab := f.Sections[dyn.Link]
	for i := 0; i+16 <= len(b); i += 16 {
		tag, val := binary.LittleEndian.Uint64(b[i:]), binary.LittleEndian.Uint64(b[i+8:])
		switch elf.DynTag(tag) {
		case elf.DT_NULL:
			return "", nil
		case elf.DT_SONAME:
			if val >= strtab.Size {
				return "", fmt.Errorf("%w: DT_SONAME at %d of a %d-byte string table", ErrBounds, val, strtab.Size)
			}
			name := make([]byte, min(strtab.Size-val, 256))
			if err := f.readAt(name, strtab.Offset+val); err != nil {
				return "", err
			}
			end := bytes.IndexByte(name, 0)
			if end < 0 {
				return "", fmt.Errorf("%w: DT_SONAME not terminated within 255 bytes", ErrBounds)
			}
			return string(name[:end]), nil
		}
	}
	return "", nil
}
