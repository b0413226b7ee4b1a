package obj

import (
	"bytes"
	"fmt"
	"slices"
)

// Delta is what changed between two compilations of a translation unit.
type Delta struct {
	Changed []string // functions of both whose code or references differ
	New     []string // functions only after
	Gone    []string // functions only before
	// Refused says why data changes cannot be live patched: a new
	// writable variable, or one whose size or initial value changed.
	Refused []error
}

// Diff compares before and after function by function: code bytes with
// relocated fields masked, and every relocation's offset, type, target
// identity and addend.
func Diff(before, after *Object) Delta {
	var d Delta
	for _, fa := range after.Funcs {
		fb := before.Func(fa.Name)
		switch {
		case fb == nil:
			d.New = append(d.New, fa.Name)
		case !SameFunc(fb, fa):
			d.Changed = append(d.Changed, fa.Name)
		}
	}
	for _, fb := range before.Funcs {
		if after.Func(fb.Name) == nil {
			d.Gone = append(d.Gone, fb.Name)
		}
	}
	for _, da := range after.Data {
		db := before.Datum(da.Name)
		switch {
		case !da.Writable && !da.TLS:
			if db != nil && da.Global && !sameDatum(db, da) {
				d.Refused = append(d.Refused, fmt.Errorf("changed constant %s, which other translation units may read", da.Name))
			}
		case db == nil:
			what := "static variable"
			if da.Global {
				what = "variable"
			}
			if da.TLS {
				what = "thread-local " + what
			}
			d.Refused = append(d.Refused, fmt.Errorf("new %s %s: the library's running copies have no room for it", what, da.Name))
		case db.Size != da.Size:
			d.Refused = append(d.Refused, fmt.Errorf("changed data layout of %s (%d -> %d bytes): the running library keeps the old one", da.Name, db.Size, da.Size))
		case !sameDatum(db, da):
			d.Refused = append(d.Refused, fmt.Errorf("changed initial value of %s: the running library keeps the old one", da.Name))
		}
	}
	return d
}

// SameFunc reports whether a and b have the same code, with relocated
// fields masked, and the same relocations.
func SameFunc(a, b *Func) bool {
	return len(a.Code) == len(b.Code) && sameRelocs(a.Relocs, b.Relocs) && bytes.Equal(Masked(a.Code, a.Relocs), Masked(b.Code, b.Relocs))
}

func sameDatum(a, b *Datum) bool {
	return a.Size == b.Size && a.Writable == b.Writable && sameRelocs(a.Relocs, b.Relocs) &&
		bytes.Equal(Masked(a.Bytes, a.Relocs), Masked(b.Bytes, b.Relocs))
}

func sameRelocs(a, b []Reloc) bool {
	return slices.EqualFunc(a, b, func(x, y Reloc) bool {
		return x.Off == y.Off && x.Type == y.Type && x.ID == y.ID && x.Addend == y.Addend
	})
}

// Masked returns a copy of code with every relocated field zeroed.
func Masked(code []byte, relocs []Reloc) []byte {
	m := bytes.Clone(code)
	for _, r := range relocs {
		clear(m[r.Off:min(r.Off+r.Size(), len(m))])
	}
	return m
}
