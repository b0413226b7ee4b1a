package target

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"testing"
)

// note encodes one ELF note.
func note(name string, typ uint32, desc []byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(name)))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(desc)))
	b = binary.LittleEndian.AppendUint32(b, typ)
	b = append(b, name...)
	b = append(b, make([]byte, int(align4(uint64(len(name))))-len(name))...)
	b = append(b, desc...)
	return append(b, make([]byte, int(align4(uint64(len(desc))))-len(desc))...)
}

func TestParseBuildID(t *testing.T) {
	id := []byte{1, 2, 3, 4, 5}
	tests := []struct {
		name string
		b    []byte
		want []byte
	}{
		{"only", note("GNU\x00", 3, id), id},
		{"after another note", append(note("GNU\x00", 1, []byte{9, 9, 9}), note("GNU\x00", 3, id)...), id},
		{"other owner", note("XYZ\x00", 3, id), nil},
		{"truncated", note("GNU\x00", 3, id)[:18], nil},
		{"huge size", append(binary.LittleEndian.AppendUint32([]byte{4, 0, 0, 0}, 0xffffffff), 3, 0, 0, 0), nil},
		{"empty", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseBuildID(tt.b); !bytes.Equal(got, tt.want) {
				t.Errorf("got %x, want %x", got, tt.want)
			}
		})
	}
}

func TestParseEhdrRejects(t *testing.T) {
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseEhdr(self[:64]); err != nil {
		t.Fatalf("own header: %v", err)
	}
	mod := func(off int, v byte) []byte {
		b := bytes.Clone(self[:64])
		b[off] = v
		return b
	}
	for name, b := range map[string][]byte{
		"short":      self[:40],
		"magic":      mod(1, 'X'),
		"32-bit":     mod(4, 1),
		"big endian": mod(5, 2),
		"machine":    mod(18, 3),
		"phentsize":  mod(54, 32),
		"phnum":      mod(57, 0xff),
	} {
		if _, err := parseEhdr(b); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v, want ErrFormat", name, err)
		}
	}
}

// FuzzParseELF runs the parsers of ELF structures read from a process's
// memory on arbitrary bytes: they must neither panic nor allocate from
// unchecked sizes.
func FuzzParseELF(f *testing.F) {
	if self, err := os.ReadFile("/proc/self/exe"); err == nil {
		f.Add(self[:min(len(self), 4096)])
	}
	f.Add(note("GNU\x00", 3, []byte{1, 2, 3, 4}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if h, err := parseEhdr(b); err == nil {
			end := h.phoff + uint64(h.phnum)*uint64(h.phentsize)
			if end <= uint64(len(b)) {
				phs := parsePhdrs(b[h.phoff:end])
				if len(phs) != int(h.phnum) {
					t.Fatalf("%d program headers, header says %d", len(phs), h.phnum)
				}
				loadBias(0x7f0000000000, phs)
			}
		}
		if id := parseBuildID(b); len(id) > len(b) {
			t.Fatalf("build-id longer than its input")
		}
	})
}
