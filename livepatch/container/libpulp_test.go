package container

import (
	"encoding/binary"
	"errors"
	"testing"
)

// libpulpApplySection encodes a .ulp section in libpulp's layout with one
// unit and one reference (research notes: libpulp.md §3.2).
func libpulpApplySection() []byte {
	le := binary.LittleEndian
	cstr := func(b []byte, s string) []byte {
		return append(append(le.AppendUint32(b, uint32(len(s)+1)), s...), 0)
	}
	b := append([]byte{libpulpApply}, make([]byte, 32)...)
	b[1] = 7
	b = le.AppendUint32(b, 20)
	b = append(b, make([]byte, 20)...)
	b = cstr(b, "libx.so.1")
	b = le.AppendUint32(b, 1)
	b = cstr(b, "f")
	b = cstr(b, "f_lp")
	b = le.AppendUint64(b, 0x1234)
	b = le.AppendUint32(b, 0) // dependencies
	b = le.AppendUint32(b, 1)
	b = cstr(b, "banner")
	b = cstr(b, "banner_ref")
	b = le.AppendUint64(b, 0x4000)
	b = le.AppendUint64(b, 0) // resolved by name
	return append(b, 1)       // TLS
}

func TestUnmarshalLibpulp(t *testing.T) {
	resolve := func(name string, function bool) (uint64, error) {
		switch {
		case name == "f_lp" && function:
			return 0x1100, nil
		case name == "banner_ref" && !function:
			return 0x3008, nil
		}
		return 0, errors.New("not found")
	}
	data := libpulpApplySection()
	if !isLibpulp(data) {
		t.Fatal("not told libpulp's")
	}
	spec, err := unmarshalLibpulp(data, resolve)
	if err != nil {
		t.Fatal(err)
	}
	want := Func{Old: "f", New: "f_lp", OldOffset: 0x1234, NewOffset: 0x1100, Mechanism: MechPad}
	if !spec.Libpulp || spec.Kind != Apply || spec.ID[0] != 7 || spec.Target.Name != "libx.so.1" || len(spec.Funcs) != 1 || spec.Funcs[0] != want ||
		len(spec.Refs) != 1 || spec.Refs[0] != (Ref{TargetVar: "banner", PatchRef: "banner_ref", TargetOffset: 0x4000, PatchOffset: 0x3008, TLS: true}) {
		t.Errorf("spec %+v", spec)
	}
	for n := range len(data) {
		if _, err := unmarshalLibpulp(data[:n], resolve); err == nil {
			t.Errorf("accepted the first %d bytes", n)
		}
	}
	if _, err := unmarshalLibpulp(data, func(string, bool) (uint64, error) { return 0, errors.New("no symbols") }); err == nil {
		t.Error("accepted a replacement the container lacks")
	}
}

// FuzzUnmarshalLibpulp decodes arbitrary bytes as a libpulp-format
// section: an error or a valid spec, never a panic.
func FuzzUnmarshalLibpulp(f *testing.F) {
	f.Add(libpulpApplySection())
	f.Fuzz(func(t *testing.T, data []byte) {
		spec, err := unmarshalLibpulp(data, func(string, bool) (uint64, error) { return 0x1000, nil })
		if err == nil && spec.Validate() != nil {
			t.Fatal("invalid spec accepted")
		}
	})
}
