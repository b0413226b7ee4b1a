package container

import (
	"bytes"
	"fmt"
)

// SUSE libpulp's container format (docs/container-format.md, "libpulp's
// format"): the same section names, native little-endian fields without a
// magic, u32 lengths that count a terminating NUL, and the replacement
// functions named but not located (libpulp's runtime dlsym()s them).
const (
	libpulpApply  = 1 // the type byte of a libpulp .ulp section
	libpulpRevert = 2 // of a .ulp.rev section
	libpulpIDLen  = 32
	// minimal encoded sizes, to bound counts before allocating
	libpulpMinUnit = 4 + 1 + 4 + 1 + 8
	libpulpMinRef  = 4 + 1 + 4 + 1 + 8 + 8 + 1
)

// isLibpulp reports whether a section payload is in libpulp's format
// rather than this package's (which starts with Magic).
func isLibpulp(data []byte) bool {
	return len(data) > 0 && !bytes.HasPrefix(data, []byte(Magic)) && (data[0] == libpulpApply || data[0] == libpulpRevert)
}

// unmarshalLibpulp decodes a .ulp or .ulp.rev section written by libpulp's
// packer. resolve returns the offset (st_value) in the container of a
// function, or of a data reference whose offset the section leaves 0. The
// Spec it returns has Libpulp set: every function uses the pad, and
// whether its NOPs follow an endbr64 is read from the target when applied.
func unmarshalLibpulp(data []byte, resolve func(name string, function bool) (uint64, error)) (*Spec, error) {
	d := decoder{data: data}
	spec, err := d.libpulp(resolve)
	if err != nil {
		return nil, err
	}
	if err := spec.Validate(); err != nil {
		return nil, &FormatError{Off: 0, Msg: "invalid libpulp spec", Err: err}
	}
	return spec, nil
}

// cstr reads a u32 length that counts a terminating NUL, then the string
// and its NUL.
func (d *decoder) cstr(what string, max int) (string, error) {
	n, err := d.u32(what + " length")
	if err != nil {
		return "", err
	}
	if n == 0 || n-1 > uint32(max) {
		return "", d.fail(what+" length", n)
	}
	b, err := d.take(int(n), what)
	if err != nil {
		return "", err
	}
	if b[n-1] != 0 || bytes.IndexByte(b[:n-1], 0) >= 0 {
		return "", d.fail(what+" is not one NUL-terminated string", string(b))
	}
	return string(b[:n-1]), nil
}

func (d *decoder) libpulp(resolve func(string, bool) (uint64, error)) (*Spec, error) {
	typ, err := d.u8("type")
	if err != nil {
		return nil, err
	}
	spec := &Spec{Libpulp: true}
	switch typ {
	case libpulpApply:
		spec.Kind = Apply
	case libpulpRevert:
		spec.Kind = Revert
	default:
		return nil, d.fail("unknown libpulp type", typ)
	}
	id, err := d.take(libpulpIDLen, "patch id")
	if err != nil {
		return nil, err
	}
	copy(spec.ID[:], id)
	n, err := d.u32("build-id length")
	if err != nil {
		return nil, err
	}
	if n == 0 || n > MaxBuildID {
		return nil, d.fail("build-id length", n)
	}
	bid, err := d.take(int(n), "build-id")
	if err != nil {
		return nil, err
	}
	spec.Target.BuildID = bytes.Clone(bid)
	if spec.Kind == Revert {
		// .ulp.rev: the length excludes the NUL, and none is written.
		n, err := d.u32("target name length")
		if err != nil {
			return nil, err
		}
		if n > MaxName {
			return nil, d.fail("target name length", n)
		}
		name, err := d.take(int(n), "target name")
		if err != nil {
			return nil, err
		}
		spec.Target.Name = string(name)
		return spec, d.end()
	}
	if spec.Target.Name, err = d.cstr("target name", MaxName); err != nil {
		return nil, err
	}
	units, err := d.count("unit count", libpulpMinUnit)
	if err != nil {
		return nil, err
	}
	spec.Funcs = make([]Func, 0, units)
	for range units {
		f := Func{Mechanism: MechPad}
		if f.Old, err = d.cstr("old function", MaxSymbol); err != nil {
			return nil, err
		}
		if f.New, err = d.cstr("new function", MaxSymbol); err != nil {
			return nil, err
		}
		if f.OldOffset, err = d.u64("old offset"); err != nil {
			return nil, err
		}
		if f.NewOffset, err = resolve(f.New, true); err != nil {
			return nil, d.fail(fmt.Sprintf("new function: %v", err), f.New)
		}
		spec.Funcs = append(spec.Funcs, f)
	}
	deps, err := d.count("dependency count", libpulpIDLen)
	if err != nil {
		return nil, err
	}
	if deps != 0 {
		return nil, d.fail("libpulp dependencies (a legacy feature) are not supported", deps)
	}
	refs, err := d.count("reference count", libpulpMinRef)
	if err != nil {
		return nil, err
	}
	spec.Refs = make([]Ref, 0, refs)
	for range refs {
		var r Ref
		if r.TargetVar, err = d.cstr("reference target", MaxSymbol); err != nil {
			return nil, err
		}
		if r.PatchRef, err = d.cstr("reference", MaxSymbol); err != nil {
			return nil, err
		}
		if r.TargetOffset, err = d.u64("reference target offset"); err != nil {
			return nil, err
		}
		if r.PatchOffset, err = d.u64("reference offset"); err != nil {
			return nil, err
		}
		tls, err := d.u8("reference TLS flag")
		if err != nil {
			return nil, err
		}
		if tls > 1 {
			return nil, d.fail("reference TLS flag", tls)
		}
		r.TLS = tls == 1
		if r.PatchOffset == 0 {
			if r.PatchOffset, err = resolve(r.PatchRef, false); err != nil {
				return nil, d.fail(fmt.Sprintf("reference: %v", err), r.PatchRef)
			}
		}
		spec.Refs = append(spec.Refs, r)
	}
	// libpulp writes the references in reverse order of the description.
	for i, j := 0, len(spec.Refs)-1; i < j; i, j = i+1, j-1 {
		spec.Refs[i], spec.Refs[j] = spec.Refs[j], spec.Refs[i]
	}
	return spec, d.end()
}

// end checks that the payload has no bytes left.
func (d *decoder) end() error {
	if d.off != len(d.data) {
		return d.fail("trailing bytes", len(d.data)-d.off)
	}
	return nil
}
