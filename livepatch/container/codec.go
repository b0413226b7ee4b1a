package container

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Layout constants of the .ulp and .ulp.rev payloads; docs/container-format.md
// is the specification and must change together with this file.
const (
	// Magic starts every .ulp and .ulp.rev payload.
	Magic = "ULPC"
	// Version is the payload version this package writes and reads.
	Version = 1

	headerSize = 4 + 2 + 1 + 1 + 32 // magic, version, kind, flags, id

	// MaxBuildID bounds a target build-id (GNU build-ids are 8 to 64 bytes in practice).
	MaxBuildID = 255
	// MaxName bounds the target name (a file basename).
	MaxName = 255
	// MaxSymbol bounds a symbol name (long C++ manglings included).
	MaxSymbol = 4096
	// MaxSection bounds a whole payload when reading a container.
	MaxSection = 64 << 20

	// minimal encoded sizes, used to bound counts before allocating
	minFuncSize = 2 + 1 + 2 + 1 + 8 + 8 + 1 + 1
	minRefSize  = 2 + 1 + 2 + 1 + 8 + 8 + 1
	refFlagTLS  = 1
)

// Marshal encodes spec as the payload of a .ulp (Apply) or .ulp.rev (Revert)
// section. Comments and Labels are not part of it: they live in
// .ulp.comments. Marshal validates spec first.
func Marshal(spec *Spec) ([]byte, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(Magic)
	b.Write(binary.LittleEndian.AppendUint16(nil, Version))
	b.WriteByte(byte(spec.Kind))
	b.WriteByte(0) // flags, reserved
	b.Write(spec.ID[:])
	b.WriteByte(byte(len(spec.Target.BuildID)))
	b.Write(spec.Target.BuildID)
	putString(&b, spec.Target.Name)
	if spec.Kind == Revert {
		return b.Bytes(), nil
	}
	b.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(spec.Funcs))))
	for _, f := range spec.Funcs {
		putString(&b, f.Old)
		putString(&b, f.New)
		b.Write(binary.LittleEndian.AppendUint64(nil, f.OldOffset))
		b.Write(binary.LittleEndian.AppendUint64(nil, f.NewOffset))
		b.WriteByte(byte(f.Mechanism))
		b.WriteByte(f.EntryOffset)
	}
	b.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(spec.Refs))))
	for _, r := range spec.Refs {
		putString(&b, r.TargetVar)
		putString(&b, r.PatchRef)
		b.Write(binary.LittleEndian.AppendUint64(nil, r.TargetOffset))
		b.Write(binary.LittleEndian.AppendUint64(nil, r.PatchOffset))
		var flags byte
		if r.TLS {
			flags |= refFlagTLS
		}
		b.WriteByte(flags)
	}
	return b.Bytes(), nil
}

func putString(b *bytes.Buffer, s string) {
	b.Write(binary.LittleEndian.AppendUint16(nil, uint16(len(s))))
	b.WriteString(s)
}

// Unmarshal decodes a .ulp or .ulp.rev payload. Every length is checked
// against the bytes that remain before anything is allocated; a malformed
// payload yields a *FormatError and a nil Spec.
func Unmarshal(data []byte) (*Spec, error) {
	d := decoder{data: data}
	spec, err := d.spec()
	if err != nil {
		return nil, err
	}
	if err := spec.Validate(); err != nil {
		return nil, &FormatError{Off: 0, Msg: "invalid spec", Err: err}
	}
	return spec, nil
}

type decoder struct {
	data []byte
	off  int
}

func (d *decoder) fail(msg string, val any) error {
	return &FormatError{Off: int64(d.off), Msg: msg, Val: val}
}

func (d *decoder) take(n int, what string) ([]byte, error) {
	if n < 0 || n > len(d.data)-d.off {
		return nil, d.fail("truncated "+what, n)
	}
	b := d.data[d.off : d.off+n]
	d.off += n
	return b, nil
}

func (d *decoder) u8(what string) (uint8, error) {
	b, err := d.take(1, what)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

func (d *decoder) u16(what string) (uint16, error) {
	b, err := d.take(2, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint16(b), nil
}

func (d *decoder) u32(what string) (uint32, error) {
	b, err := d.take(4, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (d *decoder) u64(what string) (uint64, error) {
	b, err := d.take(8, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

func (d *decoder) str(what string, max int) (string, error) {
	n, err := d.u16(what + " length")
	if err != nil {
		return "", err
	}
	if int(n) > max {
		return "", d.fail(what+" too long", n)
	}
	b, err := d.take(int(n), what)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// count reads a u32 element count and checks that count elements of at
// least minSize bytes fit in what remains.
func (d *decoder) count(what string, minSize int) (int, error) {
	n, err := d.u32(what)
	if err != nil {
		return 0, err
	}
	if uint64(n)*uint64(minSize) > uint64(len(d.data)-d.off) {
		return 0, d.fail(what+" exceeds payload", n)
	}
	return int(n), nil
}

func (d *decoder) spec() (*Spec, error) {
	magic, err := d.take(len(Magic), "magic")
	if err != nil {
		return nil, err
	}
	if string(magic) != Magic {
		d.off = 0
		return nil, d.fail("bad magic", fmt.Sprintf("%q", magic))
	}
	version, err := d.u16("version")
	if err != nil {
		return nil, err
	}
	if version != Version {
		return nil, d.fail("unsupported version", version)
	}
	kind, err := d.u8("kind")
	if err != nil {
		return nil, err
	}
	if Kind(kind) != Apply && Kind(kind) != Revert {
		return nil, d.fail("unknown kind", kind)
	}
	flags, err := d.u8("flags")
	if err != nil {
		return nil, err
	}
	if flags != 0 {
		return nil, d.fail("unknown flags", flags)
	}
	spec := &Spec{Kind: Kind(kind)}
	id, err := d.take(len(spec.ID), "patch id")
	if err != nil {
		return nil, err
	}
	copy(spec.ID[:], id)
	n, err := d.u8("build-id length")
	if err != nil {
		return nil, err
	}
	bid, err := d.take(int(n), "build-id")
	if err != nil {
		return nil, err
	}
	spec.Target.BuildID = bytes.Clone(bid)
	if spec.Target.Name, err = d.str("target name", MaxName); err != nil {
		return nil, err
	}
	if spec.Kind == Apply {
		if err := d.apply(spec); err != nil {
			return nil, err
		}
	}
	if d.off != len(d.data) {
		return nil, d.fail("trailing bytes", len(d.data)-d.off)
	}
	return spec, nil
}

func (d *decoder) apply(spec *Spec) error {
	n, err := d.count("function count", minFuncSize)
	if err != nil {
		return err
	}
	spec.Funcs = make([]Func, n)
	for i := range spec.Funcs {
		f := &spec.Funcs[i]
		if f.Old, err = d.str("old function name", MaxSymbol); err != nil {
			return err
		}
		if f.New, err = d.str("new function name", MaxSymbol); err != nil {
			return err
		}
		if f.OldOffset, err = d.u64("old offset"); err != nil {
			return err
		}
		if f.NewOffset, err = d.u64("new offset"); err != nil {
			return err
		}
		m, err := d.u8("mechanism")
		if err != nil {
			return err
		}
		f.Mechanism = Mechanism(m)
		if f.EntryOffset, err = d.u8("entry offset"); err != nil {
			return err
		}
	}
	if n, err = d.count("reference count", minRefSize); err != nil {
		return err
	}
	spec.Refs = make([]Ref, n)
	for i := range spec.Refs {
		r := &spec.Refs[i]
		if r.TargetVar, err = d.str("target variable name", MaxSymbol); err != nil {
			return err
		}
		if r.PatchRef, err = d.str("patch reference name", MaxSymbol); err != nil {
			return err
		}
		if r.TargetOffset, err = d.u64("target offset"); err != nil {
			return err
		}
		if r.PatchOffset, err = d.u64("patch offset"); err != nil {
			return err
		}
		flags, err := d.u8("reference flags")
		if err != nil {
			return err
		}
		if flags&^refFlagTLS != 0 {
			return d.fail("unknown reference flags", flags)
		}
		r.TLS = flags&refFlagTLS != 0
	}
	return nil
}

// Validate reports every problem of spec that would make it unencodable or
// unusable, joined into one error (nil when there is none).
func (s *Spec) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if s.Kind != Apply && s.Kind != Revert {
		bad("unknown kind %d", s.Kind)
	}
	if n := len(s.Target.BuildID); n == 0 || n > MaxBuildID {
		bad("target build-id has %d bytes, want 1 to %d", n, MaxBuildID)
	}
	if err := checkName(s.Target.Name); err != nil {
		bad("target name: %w", err)
	}
	if s.Kind == Revert && (len(s.Funcs) > 0 || len(s.Refs) > 0) {
		bad("a revert spec has no functions or references")
	}
	if s.Kind == Apply && len(s.Funcs) == 0 {
		bad("no function to replace")
	}
	seen := make(map[string]bool)
	for i, f := range s.Funcs {
		if err := checkSymbol(f.Old); err != nil {
			bad("function %d: old name: %w", i, err)
		}
		if err := checkSymbol(f.New); err != nil {
			bad("function %d: new name: %w", i, err)
		}
		key := fmt.Sprintf("%s@%x", f.Old, f.OldOffset)
		if seen[key] {
			bad("function %d: %q replaced twice", i, f.Old)
		}
		seen[key] = true
		switch f.Mechanism {
		case MechPad, MechEntry:
			if f.EntryOffset != 0 && f.EntryOffset != 4 {
				bad("function %d: entry offset %d, want 0 or 4", i, f.EntryOffset)
			}
		default:
			bad("function %d: unknown mechanism %d", i, f.Mechanism)
		}
	}
	for i, r := range s.Refs {
		if err := checkSymbol(r.TargetVar); err != nil {
			bad("reference %d: target variable: %w", i, err)
		}
		if err := checkSymbol(r.PatchRef); err != nil {
			bad("reference %d: patch reference: %w", i, err)
		}
	}
	return errors.Join(errs...)
}

func checkName(s string) error {
	switch {
	case s == "":
		return errors.New("empty")
	case len(s) > MaxName:
		return fmt.Errorf("%d bytes, at most %d", len(s), MaxName)
	case strings.ContainsAny(s, "/\x00"):
		return fmt.Errorf("%q is not a file basename", s)
	case s == "." || s == "..":
		return fmt.Errorf("%q is not a file basename", s)
	}
	return nil
}

func checkSymbol(s string) error {
	switch {
	case s == "":
		return errors.New("empty")
	case len(s) > MaxSymbol:
		return fmt.Errorf("%d bytes, at most %d", len(s), MaxSymbol)
	case strings.ContainsRune(s, 0):
		return fmt.Errorf("%q contains NUL", s)
	}
	return nil
}
