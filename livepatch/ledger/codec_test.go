package ledger

import (
	"encoding/binary"
	"errors"
	"flag"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
	"time"

	"ulp/livepatch/container"
)

var update = flag.Bool("update", false, "rewrite testdata/*.ledger from the current encoder")

// sampleLedger is a ledger of two stacked patches, one function with
// endbr64; testdata/sample.ledger holds its encoding.
func sampleLedger(t testing.TB) *Ledger {
	id1, id2 := container.ID{1, 2, 3}, container.ID{4, 5, 6}
	l := &Ledger{
		Patches: []Patch{
			{ID: id1, Container: "/usr/lib/livepatches/libc_livepatch1.so", Target: "libc.so.6",
				BuildID: []byte{0xde, 0xad, 0xbe, 0xef}, AppliedAt: time.Unix(1700000000, 123).UTC(),
				Labels: []string{"jsc#SLE-0000", "CVE-2024-0001"}, Redirects: []Redirect{{0x7f0000001e, 0x7f1000001000}, {0x7f0000004e, 0x7f1000002000}}},
			{ID: id2, Container: "/usr/lib/livepatches/libc_livepatch2.so", Target: "libc.so.6",
				AppliedAt: time.Unix(1700000100, 0).UTC(), Redirects: []Redirect{{0x7f0000001e, 0x7f2000001000}}},
		},
		Stacks: []Stack{
			{Addr: 0x7f0000001e, Mechanism: container.MechPad, EntryOffset: 0, Orig: []byte{0x66, 0x90},
				Entries: []Entry{{id1, 0x7f1000001000}, {id2, 0x7f2000001000}}},
			{Addr: 0x7f0000004e, Mechanism: container.MechPad, EntryOffset: 4, Orig: []byte{0x90, 0x90},
				Entries: []Entry{{id1, 0x7f1000002000}}},
		},
	}
	if err := l.Validate(); err != nil {
		t.Fatal(err)
	}
	return l
}

func TestEncodeGolden(t *testing.T) {
	b, err := Encode(sampleLedger(t))
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "sample.ledger")
	if *update {
		if err := os.WriteFile(golden, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != string(want) {
		t.Fatalf("encoding changed (run with -update if intended, and bump Version):\n got % x\nwant % x", b, want)
	}
	l, err := Decode(want)
	if err != nil {
		t.Fatal(err)
	}
	if !l.Equal(sampleLedger(t)) {
		t.Fatalf("decoded %+v", l)
	}
}

func TestDecodeEmpty(t *testing.T) {
	for _, b := range [][]byte{nil, {}, make([]byte, 64)} {
		l, err := Decode(b)
		if err != nil || len(l.Patches) != 0 || len(l.Stacks) != 0 {
			t.Errorf("Decode(%d zero bytes) = %+v, %v", len(b), l, err)
		}
	}
	b, err := Encode(&Ledger{})
	if err != nil {
		t.Fatal(err)
	}
	if l, err := Decode(b); err != nil || len(l.Patches) != 0 {
		t.Errorf("round trip of the empty ledger: %+v, %v", l, err)
	}
}

// reseal recomputes the trailer of b after a test changed its body.
func reseal(b []byte) []byte {
	body := b[:len(b)-trailerLen]
	return binary.LittleEndian.AppendUint32(body, crc32.ChecksumIEEE(body))
}

func TestDecodeRejects(t *testing.T) {
	good, err := Encode(sampleLedger(t))
	if err != nil {
		t.Fatal(err)
	}
	mod := func(f func(b []byte) []byte) []byte {
		b := append([]byte(nil), good...)
		return f(b)
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"short", []byte("ULPL")},
		{"bad magic", mod(func(b []byte) []byte { b[0] = 'X'; return reseal(b) })},
		{"bad version", mod(func(b []byte) []byte { b[4] = 9; return reseal(b) })},
		{"bad checksum", mod(func(b []byte) []byte { b[20]++; return b })},
		{"truncated", reseal(good[:len(good)-10])},
		{"trailing bytes", reseal(append(mod(func(b []byte) []byte { return b[:len(b)-trailerLen] }), 0, 0, 0, 0, 0))},
		{"huge patch count", mod(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[8:], 0xffffffff); return reseal(b) })},
		{"huge stack count", mod(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[12:], 1<<30); return reseal(b) })},
		{"unknown mechanism", mod(func(b []byte) []byte {
			// The first stack starts after the patches; find it by its address.
			for i := headerLen; i+9 < len(b); i++ {
				if binary.LittleEndian.Uint64(b[i:]) == 0x7f0000001e && b[i+8] == byte(container.MechPad) && b[i+9] == 0 {
					b[i+8] = 7
					break
				}
			}
			return reseal(b)
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Decode(tt.b)
			if !errors.Is(err, ErrFormat) || l != nil {
				t.Errorf("Decode = %v, %v; want nil and ErrFormat", l, err)
			}
		})
	}
}

func TestEncodeRejectsInconsistent(t *testing.T) {
	l := sampleLedger(t)
	l.Stacks[0].Entries[0].Patch = container.ID{9}
	if _, err := Encode(l); !errors.Is(err, ErrFormat) {
		t.Errorf("Encode of a stack naming an unknown patch: %v", err)
	}
	l = sampleLedger(t)
	l.Patches[0].BuildID = make([]byte, 300)
	if _, err := Encode(l); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Encode of a 300-byte build-id: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.ledger"))
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := Decode(b)
		if err != nil {
			if l != nil {
				t.Fatalf("error %v with a non-nil ledger", err)
			}
			return
		}
		// Whatever decodes must encode and decode to the same ledger.
		enc, err := Encode(l)
		if err != nil {
			t.Fatalf("decoded ledger does not encode: %v", err)
		}
		m, err := Decode(enc)
		if err != nil || !m.Equal(l) {
			t.Fatalf("re-decode: %v", err)
		}
	})
}
