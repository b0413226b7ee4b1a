package obj

import (
	"bytes"
	"debug/dwarf"
	"debug/elf"
	"fmt"
	"slices"
	"strings"
)

// maxTypes bounds the type entries read from one object's DWARF.
const maxTypes = 1 << 20

// Layouts returns the layout of every named struct and union type (and
// typedef of an unnamed one) in the DWARF of the object in data: a key
// ("struct node", "typedef node_t") and its size and members, by name,
// offset and size. An object without DWARF has none.
func Layouts(data []byte) (map[string]string, error) {
	ef, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	if ef.Section(".debug_info") == nil {
		return nil, nil
	}
	d, err := ef.DWARF()
	if err != nil {
		return nil, fmt.Errorf("%w: DWARF: %w", ErrFormat, err)
	}
	out := make(map[string]string)
	r := d.Reader()
	for n := 0; n < maxTypes; n++ {
		e, err := r.Next()
		if err != nil {
			return nil, fmt.Errorf("%w: DWARF: %w", ErrFormat, err)
		}
		if e == nil {
			break
		}
		switch e.Tag {
		case dwarf.TagStructType, dwarf.TagUnionType, dwarf.TagTypedef:
		default:
			continue
		}
		t, err := d.Type(e.Offset)
		if err != nil {
			continue // a type debug/dwarf cannot read says nothing about layouts
		}
		key, st := "", (*dwarf.StructType)(nil)
		switch t := t.(type) {
		case *dwarf.StructType:
			if t.StructName == "" || t.Incomplete {
				continue
			}
			key, st = t.Kind+" "+t.StructName, t
		case *dwarf.TypedefType:
			s, ok := t.Type.(*dwarf.StructType)
			if !ok || s.StructName != "" || s.Incomplete {
				continue
			}
			key, st = "typedef "+t.Name, s
		default:
			continue
		}
		l := layout(st)
		if prev, ok := out[key]; ok && prev != l && !strings.Contains(prev, l) {
			parts := append(strings.Split(prev, " | "), l)
			slices.Sort(parts)
			l = strings.Join(parts, " | ")
		} else if ok {
			continue
		}
		out[key] = l
	}
	return out, nil
}

func layout(s *dwarf.StructType) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d bytes:", s.ByteSize)
	for _, f := range s.Field {
		fmt.Fprintf(&b, " %s@%d/%d", f.Name, f.ByteOffset, f.Type.Size())
		if f.BitSize != 0 {
			fmt.Fprintf(&b, ".%d+%d", f.DataBitOffset, f.BitSize)
		}
	}
	return b.String()
}

// ChangedLayouts compares two objects' Layouts and describes each type
// whose layout differs.
func ChangedLayouts(before, after map[string]string) []error {
	var out []error
	for _, k := range sortedKeys(after) {
		if b, ok := before[k]; ok && b != after[k] {
			out = append(out, fmt.Errorf("changed layout of %s (%s -> %s): data of the old layout is in memory already", k, b, after[k]))
		}
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
