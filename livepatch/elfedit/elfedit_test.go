package elfedit

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"testing"
)

const sampleContainer = "../container/testdata/sample.so"

func TestAddSections_NewAndReplace(t *testing.T) {
	in, err := os.ReadFile(sampleContainer)
	if err != nil {
		t.Fatal(err)
	}
	add := []Section{{Name: ".extra", Data: []byte("hello")}, {Name: ".ulp.comments", Data: []byte("replaced")}}
	out, err := AddSections(in, add)
	if err != nil {
		t.Fatal(err)
	}
	ef, err := elf.NewFile(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	orig, _ := elf.NewFile(bytes.NewReader(in))
	if len(ef.Sections) != len(orig.Sections)+1 {
		t.Errorf("%d sections, want %d", len(ef.Sections), len(orig.Sections)+1)
	}
	for i, s := range orig.Sections {
		if ef.Sections[i].Name != s.Name {
			t.Errorf("section %d renamed %s -> %s", i, s.Name, ef.Sections[i].Name)
		}
		if s.Flags&elf.SHF_ALLOC != 0 {
			a, _ := s.Data()
			b, _ := ef.Sections[i].Data()
			if !bytes.Equal(a, b) || s.Offset != ef.Sections[i].Offset || s.Addr != ef.Sections[i].Addr {
				t.Errorf("loaded section %s moved or changed", s.Name)
			}
		}
	}
	for _, a := range add {
		s := ef.Section(a.Name)
		if s == nil {
			t.Fatalf("no section %s", a.Name)
		}
		d, _ := s.Data()
		if !bytes.Equal(d, a.Data) || s.Flags != 0 || s.Type != elf.SHT_PROGBITS {
			t.Errorf("%s: %q flags %v type %v", a.Name, d, s.Flags, s.Type)
		}
	}
	for i, p := range orig.Progs {
		if p.ProgHeader != ef.Progs[i].ProgHeader {
			t.Errorf("program header %d changed", i)
		}
	}
	// Adding the same sections again is a fixed point.
	again, err := AddSections(out, add)
	if err != nil || !bytes.Equal(again, out) {
		t.Errorf("re-adding changed the file (%v)", err)
	}
}

func TestAddSections_Hostile(t *testing.T) {
	in, err := os.ReadFile(sampleContainer)
	if err != nil {
		t.Fatal(err)
	}
	set := func(off int, v any) []byte {
		b := bytes.Clone(in)
		var w bytes.Buffer
		binary.Write(&w, binary.LittleEndian, v)
		copy(b[off:], w.Bytes())
		return b
	}
	shoff := binary.LittleEndian.Uint64(in[offShoff:])
	shstrndx := binary.LittleEndian.Uint16(in[offShstrndx:])
	strHdr := int(shoff) + int(shstrndx)*shdrSize
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"short", in[:40]},
		{"not elf", append([]byte("MZ"), in[2:]...)},
		{"32-bit", set(elf.EI_CLASS, uint8(elf.ELFCLASS32))},
		{"big endian", set(elf.EI_DATA, uint8(elf.ELFDATA2MSB))},
		{"shentsize", set(offShentsize, uint16(40))},
		{"no sections", set(offShnum, uint16(0))},
		{"shstrndx out of range", set(offShstrndx, uint16(0xfff0))},
		{"shoff beyond file", set(offShoff, uint64(1<<62))},
		{"shoff overflow", set(offShoff, ^uint64(0))},
		{"truncated table", in[:len(in)-10]},
		{"names not strtab", set(strHdr+shType, uint32(elf.SHT_PROGBITS))},
		{"names beyond file", set(strHdr+shOffset, uint64(1<<40))},
		{"names size overflow", set(strHdr+shSize, ^uint64(0))},
		{"phoff beyond file", set(offPhoff, uint64(1<<40))},
		{"phentsize small", set(offPhentsize, uint16(8))},
		{"section beyond file", set(int(shoff)+1*shdrSize+shSize, uint64(1<<40))},
		{"bad name offset", set(int(shoff)+1*shdrSize+shName, uint32(1<<30))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := AddSections(tt.data, []Section{{Name: ".ulp", Data: []byte{1}}})
			if out != nil || !errors.Is(err, ErrUnsupported) {
				t.Errorf("AddSections = %d bytes, %v; want ErrUnsupported", len(out), err)
			}
		})
	}
}

func FuzzAddSections(f *testing.F) {
	in, err := os.ReadFile(sampleContainer)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(in)
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := AddSections(data, []Section{{Name: ".ulp", Data: []byte("x")}, {Name: ".new", Data: nil}})
		if err != nil {
			if out != nil {
				t.Fatal("output with an error")
			}
			return
		}
		if !bytes.Equal(out[:16], data[:16]) {
			t.Fatal("ELF identification changed")
		}
	})
}
