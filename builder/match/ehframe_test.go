package match

import (
	"debug/elf"
	"testing"
)

// TestParseEHFrame reads the .eh_frame of the system's libc: every FDE must
// lie inside an executable section.
func TestParseEHFrame(t *testing.T) {
	ef, err := elf.Open("/lib/x86_64-linux-gnu/libc.so.6")
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	s := ef.Section(".eh_frame")
	if s == nil {
		t.Fatal("no .eh_frame")
	}
	data, err := s.Data()
	if err != nil {
		t.Fatal(err)
	}
	fdes, err := parseEHFrame(data, s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if len(fdes) < 1000 {
		t.Fatalf("%d FDEs", len(fdes))
	}
	for _, f := range fdes {
		ok := false
		for _, x := range ef.Sections {
			if x.Flags&elf.SHF_EXECINSTR != 0 && f.start >= x.Addr && f.start+f.size <= x.Addr+x.Size {
				ok = true
			}
		}
		if !ok {
			t.Fatalf("FDE %#x+%d outside the code", f.start, f.size)
		}
	}
}

func FuzzParseEHFrame(f *testing.F) {
	// A CIE (zR, pcrel|sdata4) and one FDE.
	f.Add([]byte("\x14\x00\x00\x00\x00\x00\x00\x00\x01zR\x00\x01\x78\x10\x01\x1b\x0c\x07\x08\x90\x01\x00\x00" +
		"\x14\x00\x00\x00\x1c\x00\x00\x00\x00\x10\x00\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fdes, err := parseEHFrame(data, 0x1000)
		if err == nil && len(fdes) > len(data)/8 {
			t.Fatalf("%d FDEs from %d bytes", len(fdes), len(data))
		}
	})
}
