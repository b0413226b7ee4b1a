package match

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// maxFDEs bounds the frame descriptions read from one .eh_frame.
const maxFDEs = 1 << 22

// errEHFrame tags malformed .eh_frame data.
var errEHFrame = errors.New("malformed .eh_frame")

// fde is the code range one frame description covers.
type fde struct {
	start, size uint64
}

// Pointer encodings of DWARF exception frames (DW_EH_PE_*, as in the LSB).
const (
	peAbsptr  = 0x00
	peULEB128 = 0x01
	peUdata2  = 0x02
	peUdata4  = 0x03
	peUdata8  = 0x04
	peSLEB128 = 0x09
	peSdata2  = 0x0a
	peSdata4  = 0x0b
	peSdata8  = 0x0c
	pePCRel   = 0x10
	peOmit    = 0xff
)

// parseEHFrame returns the FDEs of an .eh_frame section loaded at addr.
// Only absolute and PC-relative pointers are accepted (what GNU ld writes).
func parseEHFrame(data []byte, addr uint64) ([]fde, error) {
	var out []fde
	encs := make(map[int]byte) // FDE pointer encoding of each CIE, by offset
	for off := 0; off+4 <= len(data); {
		length := uint64(binary.LittleEndian.Uint32(data[off:]))
		hdr := 4
		if length == 0 {
			break // terminator
		}
		if length == 0xffffffff {
			if off+12 > len(data) {
				return nil, fmt.Errorf("%w: truncated 64-bit length at %#x", errEHFrame, off)
			}
			length = binary.LittleEndian.Uint64(data[off+4:])
			hdr = 12
		}
		if length > uint64(len(data)-off-hdr) || length < 4 {
			return nil, fmt.Errorf("%w: record at %#x of %d bytes runs past the section", errEHFrame, off, length)
		}
		body := data[off+hdr : off+hdr+int(length)]
		idPos := off + hdr
		id := binary.LittleEndian.Uint32(body)
		if id == 0 {
			enc, err := cieEncoding(body[4:])
			if err != nil {
				return nil, fmt.Errorf("%w: CIE at %#x: %w", errEHFrame, off, err)
			}
			encs[off] = enc
		} else {
			cie := idPos - int(id)
			enc, ok := encs[cie]
			if !ok {
				return nil, fmt.Errorf("%w: FDE at %#x names no CIE read before it", errEHFrame, off)
			}
			p := 4
			if enc&0x80 != 0 {
				return nil, fmt.Errorf("%w: FDE at %#x: indirect pointer encoding %#x", errEHFrame, off, enc)
			}
			start, n, err := readPointer(body[p:], enc, addr+uint64(idPos+p))
			if err != nil {
				return nil, fmt.Errorf("%w: FDE at %#x: %w", errEHFrame, off, err)
			}
			p += n
			size, _, err := readPointer(body[p:], enc&0x0f, 0)
			if err != nil {
				return nil, fmt.Errorf("%w: FDE at %#x: %w", errEHFrame, off, err)
			}
			if len(out) >= maxFDEs {
				return nil, fmt.Errorf("%w: more than %d FDEs", errEHFrame, maxFDEs)
			}
			out = append(out, fde{start, size})
		}
		off += hdr + int(length)
	}
	return out, nil
}

// cieEncoding reads a CIE after its id and returns its FDE pointer encoding.
func cieEncoding(b []byte) (byte, error) {
	if len(b) < 1 {
		return 0, errors.New("truncated")
	}
	version := b[0]
	if version != 1 && version != 3 {
		return 0, fmt.Errorf("CIE version %d", version)
	}
	b = b[1:]
	nul := -1
	for i, c := range b {
		if c == 0 {
			nul = i
			break
		}
	}
	if nul < 0 {
		return 0, errors.New("unterminated augmentation")
	}
	aug := string(b[:nul])
	b = b[nul+1:]
	if len(aug) >= 2 && aug[:2] == "eh" {
		if len(b) < 8 {
			return 0, errors.New("truncated")
		}
		b = b[8:]
		aug = aug[2:]
	}
	var err error
	for range 2 { // code and data alignment factors
		if b, err = skipLEB(b); err != nil {
			return 0, err
		}
	}
	if version == 1 {
		if len(b) < 1 {
			return 0, errors.New("truncated")
		}
		b = b[1:]
	} else if b, err = skipLEB(b); err != nil {
		return 0, err
	}
	if aug == "" || aug[0] != 'z' {
		return peAbsptr, nil
	}
	if b, err = skipLEB(b); err != nil { // augmentation data length
		return 0, err
	}
	for _, c := range aug[1:] {
		switch c {
		case 'R':
			if len(b) < 1 {
				return 0, errors.New("truncated")
			}
			return b[0], nil
		case 'P':
			if len(b) < 1 {
				return 0, errors.New("truncated")
			}
			_, n, err := readPointer(b[1:], b[0]&0x7f, 0)
			if err != nil {
				return 0, err
			}
			b = b[1+n:]
		case 'L':
			if len(b) < 1 {
				return 0, errors.New("truncated")
			}
			b = b[1:]
		case 'S', 'B':
		default:
			return 0, fmt.Errorf("unknown augmentation %q", aug)
		}
	}
	return peAbsptr, nil
}

func skipLEB(b []byte) ([]byte, error) {
	for i := 0; i < len(b) && i < 10; i++ {
		if b[i]&0x80 == 0 {
			return b[i+1:], nil
		}
	}
	return nil, errors.New("bad LEB128")
}

func readLEB(b []byte, signed bool) (uint64, int, error) {
	var v uint64
	var shift uint
	for i := 0; i < len(b) && i < 10; i++ {
		v |= uint64(b[i]&0x7f) << shift
		shift += 7
		if b[i]&0x80 == 0 {
			if signed && shift < 64 && b[i]&0x40 != 0 {
				v |= ^uint64(0) << shift
			}
			return v, i + 1, nil
		}
	}
	return 0, 0, errors.New("bad LEB128")
}

// readPointer decodes one pointer of encoding enc at b; pc is the address
// of b, for PC-relative pointers.
func readPointer(b []byte, enc byte, pc uint64) (uint64, int, error) {
	if enc == peOmit {
		return 0, 0, nil
	}
	var v uint64
	var n int
	need := func(k int) error {
		if len(b) < k {
			return errors.New("truncated pointer")
		}
		n = k
		return nil
	}
	var err error
	switch enc & 0x0f {
	case peAbsptr, peUdata8, peSdata8:
		if err = need(8); err == nil {
			v = binary.LittleEndian.Uint64(b)
		}
	case peUdata4:
		if err = need(4); err == nil {
			v = uint64(binary.LittleEndian.Uint32(b))
		}
	case peSdata4:
		if err = need(4); err == nil {
			v = uint64(int64(int32(binary.LittleEndian.Uint32(b))))
		}
	case peUdata2:
		if err = need(2); err == nil {
			v = uint64(binary.LittleEndian.Uint16(b))
		}
	case peSdata2:
		if err = need(2); err == nil {
			v = uint64(int64(int16(binary.LittleEndian.Uint16(b))))
		}
	case peULEB128:
		v, n, err = readLEB(b, false)
	case peSLEB128:
		v, n, err = readLEB(b, true)
	default:
		err = fmt.Errorf("unsupported pointer encoding %#x", enc)
	}
	if err != nil {
		return 0, 0, err
	}
	switch enc & 0x70 {
	case 0:
	case pePCRel:
		v += pc
	default:
		return 0, 0, fmt.Errorf("unsupported pointer application %#x", enc)
	}
	return v, n, nil
}
