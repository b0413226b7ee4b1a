package ledger

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"time"

	"ulp/livepatch/container"
)

// The encoded ledger (all integers little endian):
//
//	header   magic "ULPL" | version u16 (1) | flags u16 (0) | npatches u32 | nstacks u32
//	patch    id [32] | applied_at i64 (Unix ns, 0 = unknown)
//	         | container str16 | target str16 | build_id str8
//	         | nlabels u16 | label str16 ... | nredirects u32 | (old u64, new u64) ...
//	stack    addr u64 | mechanism u8 | entry_offset u8 | orig str8
//	         | nentries u32 | (patch id [32], new u64) ...
//	trailer  CRC-32 (IEEE) of every byte before it
//
// str8 and str16 are a u8 or u16 length followed by that many bytes. Zero
// bytes (a fresh runtime's empty ledger area) decode as the empty ledger.

// Magic and Version identify the encoding.
const (
	Magic   = "ULPL"
	Version = 1
)

const (
	headerLen  = 16
	trailerLen = 4
	// Smallest encodings, used to bound counts before allocating.
	minPatchLen    = 32 + 8 + 2 + 2 + 1 + 2 + 4
	minStackLen    = 8 + 1 + 1 + 1 + 4
	redirectLen    = 16
	entryRecordLen = 32 + 8
)

// Encode returns the binary form of l. It fails with ErrFormat when l is
// inconsistent and ErrTooLarge when a field exceeds the format's limits.
func Encode(l *Ledger) ([]byte, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	if len(l.Patches) > math.MaxUint32 || len(l.Stacks) > math.MaxUint32 {
		return nil, fmt.Errorf("%w: %d patches, %d stacks", ErrTooLarge, len(l.Patches), len(l.Stacks))
	}
	e := encoder{b: make([]byte, 0, 256)}
	e.b = append(e.b, Magic...)
	e.u16(Version)
	e.u16(0)
	e.u32(uint32(len(l.Patches)))
	e.u32(uint32(len(l.Stacks)))
	for _, p := range l.Patches {
		e.b = append(e.b, p.ID[:]...)
		var at int64
		if !p.AppliedAt.IsZero() {
			at = p.AppliedAt.UnixNano()
		}
		e.u64(uint64(at))
		e.str16("container path", p.Container)
		e.str16("target name", p.Target)
		e.str8("build-id", p.BuildID)
		e.count16("labels", len(p.Labels))
		for _, s := range p.Labels {
			e.str16("label", s)
		}
		e.count32("redirects", len(p.Redirects))
		for _, r := range p.Redirects {
			e.u64(r.Old)
			e.u64(r.New)
		}
	}
	for _, s := range l.Stacks {
		e.u64(s.Addr)
		e.b = append(e.b, byte(s.Mechanism), s.EntryOffset)
		e.str8("original bytes", s.Orig)
		e.count32("entries", len(s.Entries))
		for _, en := range s.Entries {
			e.b = append(e.b, en.Patch[:]...)
			e.u64(en.New)
		}
	}
	if e.err != nil {
		return nil, e.err
	}
	return binary.LittleEndian.AppendUint32(e.b, crc32.ChecksumIEEE(e.b)), nil
}

type encoder struct {
	b   []byte
	err error
}

func (e *encoder) u16(v uint16) { e.b = binary.LittleEndian.AppendUint16(e.b, v) }
func (e *encoder) u32(v uint32) { e.b = binary.LittleEndian.AppendUint32(e.b, v) }
func (e *encoder) u64(v uint64) { e.b = binary.LittleEndian.AppendUint64(e.b, v) }

func (e *encoder) tooLarge(what string, n int) {
	if e.err == nil {
		e.err = fmt.Errorf("%w: %s: %d", ErrTooLarge, what, n)
	}
}

func (e *encoder) count16(what string, n int) {
	if n > math.MaxUint16 {
		e.tooLarge(what, n)
	}
	e.u16(uint16(n))
}

func (e *encoder) count32(what string, n int) {
	if n > math.MaxUint32 {
		e.tooLarge(what, n)
	}
	e.u32(uint32(n))
}

func (e *encoder) str16(what, s string) {
	e.count16(what, len(s))
	e.b = append(e.b, s...)
}

func (e *encoder) str8(what string, s []byte) {
	if len(s) > math.MaxUint8 {
		e.tooLarge(what, len(s))
	}
	e.b = append(e.b, byte(len(s)))
	e.b = append(e.b, s...)
}

// Decode parses an encoded ledger. An empty b, or b of only zero bytes,
// is the empty ledger. Any malformed input gives an error wrapping
// ErrFormat; Decode never panics and allocates only in proportion to len(b).
func Decode(b []byte) (*Ledger, error) {
	if allZero(b) {
		return &Ledger{}, nil
	}
	if len(b) < headerLen+trailerLen {
		return nil, fmt.Errorf("%w: %d bytes", ErrFormat, len(b))
	}
	if string(b[:4]) != Magic {
		return nil, fmt.Errorf("%w: bad magic % x", ErrFormat, b[:4])
	}
	if v := binary.LittleEndian.Uint16(b[4:]); v != Version {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrFormat, v, Version)
	}
	body := b[:len(b)-trailerLen]
	if sum, want := crc32.ChecksumIEEE(body), binary.LittleEndian.Uint32(b[len(body):]); sum != want {
		return nil, fmt.Errorf("%w: checksum %08x, want %08x", ErrFormat, sum, want)
	}
	d := decoder{b: body[8:]}
	np := d.count32("patches", minPatchLen)
	ns := d.count32("stacks", minStackLen)
	l := &Ledger{Patches: make([]Patch, 0, np), Stacks: make([]Stack, 0, ns)}
	for range np {
		if d.err != nil {
			break
		}
		var p Patch
		copy(p.ID[:], d.bytes(len(p.ID)))
		if at := int64(d.u64()); at != 0 {
			p.AppliedAt = time.Unix(0, at).UTC()
		}
		p.Container = string(d.bytes(int(d.u16())))
		p.Target = string(d.bytes(int(d.u16())))
		p.BuildID = d.bytes(int(d.u8()))
		nl := d.count16("labels", 2)
		for range nl {
			p.Labels = append(p.Labels, string(d.bytes(int(d.u16()))))
		}
		nr := d.count32("redirects", redirectLen)
		for range nr {
			p.Redirects = append(p.Redirects, Redirect{Old: d.u64(), New: d.u64()})
		}
		l.Patches = append(l.Patches, p)
	}
	for range ns {
		if d.err != nil {
			break
		}
		s := Stack{Addr: d.u64(), Mechanism: container.Mechanism(d.u8()), EntryOffset: d.u8()}
		s.Orig = d.bytes(int(d.u8()))
		ne := d.count32("entries", entryRecordLen)
		for range ne {
			var en Entry
			copy(en.Patch[:], d.bytes(len(container.ID{})))
			en.New = d.u64()
			s.Entries = append(s.Entries, en)
		}
		l.Stacks = append(l.Stacks, s)
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", ErrFormat, len(d.b))
	}
	if d.err != nil {
		return nil, d.err
	}
	if err := l.Validate(); err != nil {
		return nil, err
	}
	return l, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// decoder reads little-endian fields; after the first error every read
// returns zero values and the error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b) {
		d.err = fmt.Errorf("%w: truncated (%d bytes wanted, %d left)", ErrFormat, n, len(d.b))
		return nil
	}
	out := make([]byte, n)
	copy(out, d.b)
	d.b = d.b[n:]
	return out
}

func (d *decoder) fixed(n int) []byte {
	if d.err != nil {
		return make([]byte, n)
	}
	if n > len(d.b) {
		d.err = fmt.Errorf("%w: truncated (%d bytes wanted, %d left)", ErrFormat, n, len(d.b))
		return make([]byte, n)
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u8() uint8   { return d.fixed(1)[0] }
func (d *decoder) u16() uint16 { return binary.LittleEndian.Uint16(d.fixed(2)) }
func (d *decoder) u32() uint32 { return binary.LittleEndian.Uint32(d.fixed(4)) }
func (d *decoder) u64() uint64 { return binary.LittleEndian.Uint64(d.fixed(8)) }

// count32 reads a u32 count of elements at least minLen bytes long each and
// rejects counts the remaining bytes cannot hold.
func (d *decoder) count32(what string, minLen int) int {
	return d.bounded(what, uint64(d.u32()), minLen)
}

func (d *decoder) count16(what string, minLen int) int {
	return d.bounded(what, uint64(d.u16()), minLen)
}

func (d *decoder) bounded(what string, n uint64, minLen int) int {
	if d.err != nil {
		return 0
	}
	if n > uint64(len(d.b)/minLen) {
		d.err = fmt.Errorf("%w: %d %s in %d bytes", ErrFormat, n, what, len(d.b))
		return 0
	}
	return int(n)
}
