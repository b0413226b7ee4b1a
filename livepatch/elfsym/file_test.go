package elfsym_test

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"ulp/internal/regfile"
	"ulp/livepatch/elfsym"
	"ulp/livepatch/packer/packertest"
)

// header is what crafted sets in an ELF file's headers.
type header struct {
	shnum    uint16
	shstrSz  uint64 // .shstrtab size
	symtabSz uint64 // .symtab size
	symLink  uint32 // .symtab's string table
	phnum    uint16
}

// crafted returns an ELF file of fileSize bytes (its tail zero) with the
// headers of h: what a hostile process may map, or name in its ledger.
func crafted(h header, fileSize int) []byte {
	le := binary.LittleEndian
	b := make([]byte, max(fileSize, 8192))
	copy(b, "\x7fELF\x02\x01\x01")
	le.PutUint16(b[16:], uint16(elf.ET_DYN))
	le.PutUint16(b[18:], uint16(elf.EM_X86_64))
	le.PutUint64(b[32:], 64)
	le.PutUint64(b[40:], 4096)
	le.PutUint16(b[54:], 56)
	le.PutUint16(b[56:], h.phnum)
	le.PutUint16(b[58:], 64)
	le.PutUint16(b[60:], h.shnum)
	le.PutUint16(b[62:], 3)
	names := "\x00.symtab\x00.strtab\x00.shstrtab\x00"
	copy(b[3584:], names)
	sh := func(i int, name uint32, typ elf.SectionType, off, size uint64, link uint32) {
		if 4096+64*(i+1) > len(b) {
			return
		}
		s := b[4096+64*i:]
		le.PutUint32(s, name)
		le.PutUint32(s[4:], uint32(typ))
		le.PutUint64(s[24:], off)
		le.PutUint64(s[32:], size)
		le.PutUint32(s[40:], link)
		le.PutUint64(s[56:], 24)
	}
	sh(1, 1, elf.SHT_SYMTAB, 6144, h.symtabSz, h.symLink)
	sh(2, 9, elf.SHT_STRTAB, 3072, 16, 0)
	sh(3, 17, elf.SHT_STRTAB, 3584, h.shstrSz, 0)
	return b[:fileSize]
}

var sane = header{shnum: 4, shstrSz: 27, symtabSz: 48, symLink: 2, phnum: 0}

func with(f func(*header)) header {
	h := sane
	f(&h)
	return h
}

// TestFile_Bounds: headers claiming more than the bounds, or sections
// outside the file, are refused with ErrBounds before anything of that
// size is allocated.
func TestFile_Bounds(t *testing.T) {
	tests := []struct {
		name string
		h    header
		size int
		err  error // from NewFile, else from Lookup
	}{
		{"sane", sane, 8192, elfsym.ErrNotFound},
		{"symtab past the end", with(func(h *header) { h.symtabSz = 1 << 31 }), 8192, elfsym.ErrBounds},
		{"symtab wraps around", with(func(h *header) { h.symtabSz = 1<<64 - 6144 }), 8192, elfsym.ErrBounds},
		{"symtab over MaxSymbols", with(func(h *header) { h.symtabSz = (elfsym.MaxSymbols + 1) * 24 }), 6144 + (elfsym.MaxSymbols+1)*24, elfsym.ErrBounds},
		{"section names too large", with(func(h *header) { h.shstrSz = elfsym.MaxSectionNames + 1 }), 3584 + elfsym.MaxSectionNames + 1, elfsym.ErrBounds},
		{"too many sections", with(func(h *header) { h.shnum = elfsym.MaxSections + 1 }), 4096 + 64*(elfsym.MaxSections+1), elfsym.ErrBounds},
		{"section headers past the end", with(func(h *header) { h.shnum = 200 }), 8192, elfsym.ErrBounds},
		{"too many program headers", with(func(h *header) { h.phnum = elfsym.MaxProgs + 1 }), 64 + 56*(elfsym.MaxProgs+1), elfsym.ErrBounds},
		{"symtab links to itself", with(func(h *header) { h.symLink = 1 }), 8192, elfsym.ErrBounds},
		{"symtab links nowhere", with(func(h *header) { h.symLink = 99 }), 8192, elfsym.ErrBounds},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := crafted(tt.h, tt.size)
			f, err := elfsym.NewFile(bytes.NewReader(data), int64(len(data)), "x.so")
			if err == nil {
				_, err = f.Lookup("ulp_abi", elfsym.TypeObject)
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("got %v, want %v", err, tt.err)
			}
			if cerr := elfsym.Check(bytes.NewReader(data)); (cerr != nil) != errors.Is(tt.err, elfsym.ErrBounds) {
				t.Errorf("Check = %v", cerr)
			}
		})
	}
}

// TestFile_MaxSymbolsInBoundedMemory: a symbol table of exactly
// MaxSymbols entries is read whole, 64 KiB at a time: the Go heap grows
// by far less than its 48 MiB.
func TestFile_MaxSymbolsInBoundedMemory(t *testing.T) {
	size := 6144 + elfsym.MaxSymbols*24
	path := t.TempDir() + "/libpulp.so.0"
	if err := os.WriteFile(path, crafted(with(func(h *header) { h.symtabSz = elfsym.MaxSymbols * 24 }), 8192), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, int64(size)); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f, err := elfsym.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Lookup("ulp_abi", elfsym.TypeObject); !errors.Is(err, elfsym.ErrNotFound) {
		t.Fatalf("Lookup: %v", err)
	}
	if _, err := f.HasPatchable(); err != nil {
		t.Fatalf("HasPatchable: %v", err)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Errorf("reading %d symbols allocated %d bytes, want under 1 MiB", elfsym.MaxSymbols, grew)
	}
}

// TestFile_AgreesWithObject: on a real library, File finds what Object
// finds (the symbols, their ambiguity, the pads).
func TestFile_AgreesWithObject(t *testing.T) {
	for _, opts := range []packertest.Options{{}, {CFProtection: true}, {TargetFlags: []string{"-Wl,--build-id=none"}}} {
		fx := packertest.Build(t, opts)
		obj, err := elfsym.Open(fx.Target)
		if err != nil {
			t.Fatal(err)
		}
		f, err := elfsym.OpenFile(fx.Target)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, name := range []string{"foo", "helper", "counter", "tlsvar", "twin", "nothere"} {
			for _, typ := range []elfsym.Type{elfsym.TypeFunc, elfsym.TypeObject, elfsym.TypeTLS} {
				want, werr := obj.Lookup(name, typ)
				got, gerr := f.Lookup(name, typ)
				want.Pad, want.Entry, want.EntryOffset, want.Refused = false, false, 0, ""
				if got != want || (werr == nil) != (gerr == nil) || werr != nil && werr.Error() != gerr.Error() {
					t.Errorf("Lookup(%s, %s) = %+v, %v; Object says %+v, %v", name, typ, got, gerr, want, werr)
				}
			}
		}
		padded, _ := obj.PaddedFuncs()
		if has, err := f.HasPatchable(); err != nil || has != (padded+obj.EntryFuncs() > 0) {
			t.Errorf("HasPatchable = %v, %v; Object has %d padded and %d entry functions", has, err, padded, obj.EntryFuncs())
		}
		oid, _ := f.BuildID()
		if !bytes.Equal(oid, obj.BuildID) {
			t.Errorf("BuildID %x, want %x", oid, obj.BuildID)
		}
	}
}

// FuzzFile: File never panics nor allocates what headers claim, on any
// bytes, seeded with a real container and headers of huge and
// inconsistent sizes.
func FuzzFile(f *testing.F) {
	seed, err := os.ReadFile("../container/testdata/sample.so")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add(crafted(sane, 8192))
	f.Add(crafted(with(func(h *header) { h.symtabSz = 1 << 40 }), 8192))
	f.Add(crafted(with(func(h *header) { h.shstrSz = 1 << 40 }), 8192))
	f.Add(crafted(with(func(h *header) { h.shnum = 0xffff }), 8192))
	f.Add(crafted(with(func(h *header) { h.phnum = 0xffff }), 8192))
	f.Fuzz(func(t *testing.T, data []byte) {
		ef, err := elfsym.NewFile(bytes.NewReader(data), int64(len(data)), "x.so")
		if err != nil {
			return
		}
		ef.Lookup("foo", elfsym.TypeFunc)
		ef.LookupAt("foo", 0x1000, elfsym.TypeFunc)
		ef.HasPatchable()
		ef.BuildID()
		if err := elfsym.Check(bytes.NewReader(data)); err != nil && !errors.Is(err, elfsym.ErrBounds) {
			t.Fatalf("Check: %v", err)
		}
	})
}

// TestFuncStart: a function starts at a function symbol's value, or, in a
// stripped library (no .symtab: its static functions have no symbol), at
// an .eh_frame entry; an offset inside a function or on data starts none.
func TestFuncStart(t *testing.T) {
	fx := packertest.Build(t, packertest.Options{})
	obj, err := elfsym.Open(fx.Target)
	if err != nil {
		t.Fatal(err)
	}
	twin, err := obj.LookupAt("twin", mustLocal(t, obj, "twin"), elfsym.TypeFunc)
	if err != nil {
		t.Fatal(err)
	}
	foo, _ := obj.Lookup("foo", elfsym.TypeFunc)
	counter, _ := obj.Lookup("counter", elfsym.TypeObject)
	stripped := filepath.Join(t.TempDir(), "libtarget.so.1")
	if out, err := exec.Command("strip", "--strip-all", "-o", stripped, fx.Target).CombinedOutput(); err != nil {
		t.Fatalf("strip: %v\n%s", err, out)
	}
	for _, lib := range []string{fx.Target, stripped} {
		f, err := elfsym.OpenFile(lib)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, tt := range []struct {
			off  uint64
			want bool
		}{{foo.Offset, true}, {twin.Offset, true}, {foo.Offset + 1, false}, {counter.Offset, false}, {0, false}} {
			if got, err := f.FuncStart(tt.off); err != nil || got != tt.want {
				t.Errorf("%s: FuncStart(%#x) = %v, %v; want %v", lib, tt.off, got, err, tt.want)
			}
		}
	}
	if f, _ := elfsym.OpenFile(stripped); f.Section(".symtab") != nil {
		t.Error("the stripped copy has a .symtab")
	}
}

// mustLocal returns the offset of the local symbol name (the first).
func mustLocal(t *testing.T, obj *elfsym.Object, name string) uint64 {
	t.Helper()
	for _, s := range obj.Symbols {
		if s.Name == name && s.Bind == elfsym.BindLocal {
			return s.Offset
		}
	}
	t.Fatalf("no local %s", name)
	return 0
}

// TestOpeners_RefuseNonRegular: every opener of a named ELF file refuses a
// FIFO and a device at once (a FIFO's open would wait for a writer
// forever), with regfile.ErrNotRegular.
func TestOpeners_RefuseNonRegular(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo.so")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	openers := map[string]func(string) error{
		"OpenFile": func(p string) error { _, err := elfsym.OpenFile(p); return err },
		"OpenStd":  func(p string) error { _, err := elfsym.OpenStd(p); return err },
		"Open":     func(p string) error { _, err := elfsym.Open(p); return err },
		"Load":     func(p string) error { _, err := elfsym.Load(p, elfsym.LoadOptions{}); return err },
	}
	for name, open := range openers {
		for _, path := range []string{fifo, "/dev/zero"} {
			done := make(chan error, 1)
			go func() { done <- open(path) }()
			select {
			case err := <-done:
				if !errors.Is(err, regfile.ErrNotRegular) {
					t.Errorf("%s(%s): %v, want ErrNotRegular", name, path, err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%s(%s) blocks", name, path)
			}
		}
	}
}
