package elfsym_test

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"ulp/internal/testenv"
	"ulp/livepatch/elfsym"
	"ulp/livepatch/packer/packertest"
)

func TestBuildID_AnyLength(t *testing.T) {
	testenv.Require(t, testenv.CC)
	dir := t.TempDir()
	src := packertest.Source(t, dir, "livepatch.c")
	tests := []struct {
		flag string
		n    int
		hex  string
	}{
		{"--build-id=sha1", 20, ""},
		{"--build-id=md5", 16, ""},
		{"--build-id=0x0102030405", 5, "0102030405"},
		{"--build-id=0x" + strings.Repeat("ab", 64), 64, strings.Repeat("ab", 64)},
	}
	for _, tt := range tests {
		t.Run(tt.flag[:min(len(tt.flag), 20)], func(t *testing.T) {
			out := filepath.Join(dir, "lib.so")
			testenv.CompileC(t, out, []string{"-shared", "-fPIC", "-Wl," + tt.flag}, src)
			obj, err := elfsym.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			if len(obj.BuildID) != tt.n || (tt.hex != "" && fmt.Sprintf("%x", obj.BuildID) != tt.hex) {
				t.Errorf("build-id %x, want %d bytes %s", obj.BuildID, tt.n, tt.hex)
			}
			if obj.Name != "lib.so" {
				t.Errorf("Name = %q", obj.Name)
			}
		})
	}
	none := filepath.Join(dir, "none.so")
	testenv.CompileC(t, none, []string{"-shared", "-fPIC", "-Wl,--build-id=none"}, src)
	ef, err := elf.Open(none)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	if _, err := elfsym.BuildID(ef); !errors.Is(err, elfsym.ErrNoBuildID) {
		t.Errorf("BuildID without note = %v", err)
	}
}

func TestPads(t *testing.T) {
	for _, cf := range []bool{false, true} {
		t.Run(fmt.Sprintf("cf-protection=%v", cf), func(t *testing.T) {
			fx := packertest.Build(t, packertest.Options{CFProtection: cf})
			obj, err := elfsym.Open(fx.Target)
			if err != nil {
				t.Fatal(err)
			}
			entry := uint8(0)
			if cf {
				entry = 4
			}
			for _, name := range []string{"foo", "bar", "helper", "twin_a", "tls_get"} {
				s, err := obj.Lookup(name, elfsym.TypeFunc)
				if err != nil {
					t.Fatal(err)
				}
				if !s.Pad || s.EntryOffset != entry {
					t.Errorf("%s: %+v, want pad at entry+%d", name, s, entry)
				}
			}
			if s, err := obj.Lookup("nopad", elfsym.TypeFunc); err != nil || s.Pad {
				t.Errorf("nopad: %+v, %v", s, err)
			}
			padded, total := obj.PaddedFuncs()
			if padded < 7 || total <= padded {
				t.Errorf("PaddedFuncs = %d of %d", padded, total)
			}
			lp, err := elfsym.Open(fx.Livepatch)
			if err != nil {
				t.Fatal(err)
			}
			if padded, _ := lp.PaddedFuncs(); padded != 0 {
				t.Errorf("livepatch built without the flag has %d padded functions", padded)
			}
		})
	}
}

func TestLookup(t *testing.T) {
	fx := packertest.Build(t, packertest.Options{})
	obj, err := elfsym.Open(fx.Target)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		types []elfsym.Type
		is    error
	}{
		{"foo", []elfsym.Type{elfsym.TypeFunc}, nil},
		{"helper", []elfsym.Type{elfsym.TypeFunc}, nil},
		{"counter", []elfsym.Type{elfsym.TypeObject}, nil},
		{"tlsvar", []elfsym.Type{elfsym.TypeTLS}, nil},
		{"counter", []elfsym.Type{elfsym.TypeFunc}, elfsym.ErrNotFound},
		{"twin", []elfsym.Type{elfsym.TypeFunc}, elfsym.ErrAmbiguous},
		{"nothere", []elfsym.Type{elfsym.TypeFunc}, elfsym.ErrNotFound},
	}
	for _, tt := range tests {
		s, err := obj.Lookup(tt.name, tt.types...)
		if !errors.Is(err, tt.is) || (err == nil && (s.Name != tt.name || (s.Offset == 0 && s.Type != elfsym.TypeTLS))) {
			t.Errorf("Lookup(%s, %v) = %+v, %v; want %v", tt.name, tt.types, s, err, tt.is)
		}
	}
	// foo is global: in .dynsym and .symtab, but listed once.
	n := 0
	for _, s := range obj.Symbols {
		if s.Name == "foo" {
			n++
			if s.Bind != elfsym.BindGlobal {
				t.Errorf("foo bind %s", s.Bind)
			}
		}
	}
	if n != 1 {
		t.Errorf("foo listed %d times", n)
	}
}

func TestLoad_Debuginfo(t *testing.T) {
	fx := packertest.Build(t, packertest.Options{})
	full, err := elfsym.Open(fx.Target)
	if err != nil {
		t.Fatal(err)
	}
	debug := filepath.Join(fx.Dir, "target.debug")
	other := packertest.Build(t, packertest.Options{TargetFlags: []string{"-DOTHER=1", "-Wl,--build-id=0x99"}})
	for _, args := range [][]string{
		{"objcopy", "--only-keep-debug", fx.Target, debug},
		{"strip", "--strip-all", fx.Target},
	} {
		if out, err := testRun(args...); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	stripped, err := elfsym.Load(fx.Target, elfsym.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stripped.Lookup("helper", elfsym.TypeFunc); !errors.Is(err, elfsym.ErrNotFound) {
		t.Fatalf("stripped target still has helper: %v", err)
	}
	merged, err := elfsym.Load(fx.Target, elfsym.LoadOptions{Debuginfo: debug})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(merged, full) {
		t.Errorf("stripped + debuginfo differs from the unstripped object:\n%+v\n%+v", merged, full)
	}
	root := filepath.Join(fx.Dir, "root")
	p := elfsym.DebuginfoPath(root, full.BuildID)
	if want := fmt.Sprintf("%s/.build-id/%x/%x.debug", root, full.BuildID[:1], full.BuildID[1:]); p != want {
		t.Errorf("DebuginfoPath = %s, want %s", p, want)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(debug, p); err != nil {
		t.Fatal(err)
	}
	found, err := elfsym.Load(fx.Target, elfsym.LoadOptions{DebugRoot: root})
	if err != nil || !reflect.DeepEqual(found, full) {
		t.Errorf("Load with DebugRoot: %v", err)
	}
	if _, err := elfsym.Load(fx.Target, elfsym.LoadOptions{Debuginfo: other.Target}); !errors.Is(err, elfsym.ErrBuildIDMismatch) {
		t.Errorf("mismatched debuginfo: %v", err)
	}
	if _, err := elfsym.Load(fx.Target, elfsym.LoadOptions{Debuginfo: filepath.Join(fx.Dir, "nope")}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing debuginfo: %v", err)
	}
}

func TestJSON_RoundTrip(t *testing.T) {
	fx := packertest.Build(t, packertest.Options{CFProtection: true})
	obj, err := elfsym.Open(fx.Target)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := obj.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	got, err := elfsym.ReadJSON(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, obj) {
		t.Errorf("JSON round trip:\n got %+v\nwant %+v", got, obj)
	}
	p := filepath.Join(fx.Dir, "t.json")
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	loaded, err := elfsym.Load(p, elfsym.LoadOptions{})
	if err != nil || !reflect.DeepEqual(loaded, obj) {
		t.Errorf("Load(json) = %v", err)
	}
	if _, err := elfsym.Load(p, elfsym.LoadOptions{Debuginfo: fx.Target}); err == nil {
		t.Error("Load(json) accepted a debuginfo file")
	}
}

func TestReadJSON_Invalid(t *testing.T) {
	good, err := os.ReadFile("testdata/small.json")
	if err != nil {
		t.Fatal(err)
	}
	obj, err := elfsym.ReadJSON(bytes.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	if s, err := obj.Lookup("big", elfsym.TypeNone); err != nil || s.Offset != 1<<64-1 {
		t.Errorf("uint64 offset: %+v, %v", s, err)
	}
	edit := func(old, new string) string { return strings.Replace(string(good), old, new, 1) }
	tests := []struct{ name, in, msg string }{
		{"empty", "", "EOF"},
		{"not json", "\x7fELF", "invalid character"},
		{"array", "[]", "cannot unmarshal"},
		{"trailing", string(good) + "{}", "data after the JSON object"},
		{"schema", edit("ulp.extract/v1", "ulp.extract/v9"), "schema"},
		{"unknown field", edit(`"name": "libtarget.so.1",`, `"name": "libtarget.so.1", "x": 1,`), "unknown field"},
		{"no name", edit(`"libtarget.so.1"`, `""`), "name of 0 bytes"},
		{"path name", edit(`"libtarget.so.1"`, `"../etc/passwd"`), "not a file basename"},
		{"bad hex", edit(`0123456789abcdef0123456789abcdef01234567`, `xyz`), "build_id"},
		{"long build-id", edit(`0123456789abcdef0123456789abcdef01234567`, strings.Repeat("00", 256)), "build_id of 512 hex digits"},
		{"negative offset", edit(`16400`, `-1`), "cannot unmarshal"},
		{"offset overflow", edit(`16400`, `18446744073709551616`), "cannot unmarshal"},
		{"float offset", edit(`16400`, `1.5`), "cannot unmarshal"},
		{"type", edit(`"object"`, `"section"`), `unknown type "section"`},
		{"bind", edit(`"bind": "weak"`, `"bind": "strong"`), `unknown bind "strong"`},
		{"empty symbol", edit(`"name": "counter"`, `"name": ""`), "symbol 0: name of 0 bytes"},
		{"nul symbol", edit(`"name": "counter"`, `"name": "a\u0000b"`), "no NUL"},
		{"pad on data", edit(`"bind": "global"}`, `"bind": "global", "pad": true}`), "pad on a object symbol"},
		{"entry without pad", edit(`"pad": true}`, `"entry_offset": 4}`), "entry_offset 4"},
		{"entry 2", edit(`"entry_offset": 4`, `"entry_offset": 2`), "entry_offset 2"},
		{"entry huge", edit(`"entry_offset": 4`, `"entry_offset": 300`), "cannot unmarshal"},
		{"entry with pad", edit(`"pad": true}`, `"pad": true, "entry": true}`), "entry on a func symbol with pad true"},
		{"entry on data", edit(`"bind": "global"}`, `"bind": "global", "entry": true}`), "entry on a object symbol"},
		{"refused with pad", edit(`"pad": true}`, `"pad": true, "refused": "x"}`), "refused with pad"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj, err := elfsym.ReadJSON(strings.NewReader(tt.in))
			if obj != nil || !errors.Is(err, elfsym.ErrInvalidDump) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("ReadJSON = %v, %v; want ErrInvalidDump with %q", obj, err, tt.msg)
			}
		})
	}
}

func FuzzExtractJSON(f *testing.F) {
	testenv.AddSeedFiles(f, "testdata/*.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		obj, err := elfsym.ReadJSON(bytes.NewReader(data))
		if err != nil {
			if obj != nil {
				t.Fatal("non-nil Object with an error")
			}
			return
		}
		var b bytes.Buffer
		if err := obj.WriteJSON(&b); err != nil {
			t.Fatal(err)
		}
		again, err := elfsym.ReadJSON(&b)
		if err != nil {
			t.Fatalf("re-reading a written dump: %v", err)
		}
		if !reflect.DeepEqual(again, obj) {
			t.Fatal("write/read is not the identity")
		}
	})
}

func FuzzReadELF(f *testing.F) {
	seed, err := os.ReadFile("../container/testdata/sample.so")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		obj, err := elfsym.Read(bytes.NewReader(data), "x.so")
		if err != nil {
			if obj != nil {
				t.Fatal("non-nil Object with an error")
			}
			return
		}
		obj.PaddedFuncs()
		if _, err := elfsym.PadSites(bytes.NewReader(data)); err != nil {
			t.Fatalf("Read accepted what PadSites rejects: %v", err)
		}
	})
}

func BenchmarkOpen(b *testing.B) {
	fx := packertest.Build(b, packertest.Options{})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := elfsym.Open(fx.Target); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	fx := packertest.Build(b, packertest.Options{})
	obj, err := elfsym.Open(fx.Target)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := obj.Lookup("foo", elfsym.TypeFunc); err != nil {
			b.Fatal(err)
		}
	}
}

// TestMechanisms_DistroLibraries classifies functions of Debian's libc.so.6
// and libcrypto.so.3 as installed: built without the pad, most functions
// get the entry mechanism; tiny ones and IFUNCs do not.
func TestMechanisms_DistroLibraries(t *testing.T) {
	testenv.Require(t, testenv.CC) // make deps installs libssl-dev with the compiler
	tests := []struct {
		lib, fn string
		typ     elfsym.Type
		entry   bool
		off     uint8
		refused string
	}{
		{"/lib/x86_64-linux-gnu/libc.so.6", "labs", elfsym.TypeFunc, true, 0, ""},
		{"/lib/x86_64-linux-gnu/libc.so.6", "atoi", elfsym.TypeFunc, true, 0, ""},
		{"/lib/x86_64-linux-gnu/libc.so.6", "strlen", elfsym.TypeIFunc, false, 0, ""},
		{"/usr/lib/x86_64-linux-gnu/libcrypto.so.3", "OPENSSL_hexchar2int", elfsym.TypeFunc, true, 0, ""},
		{"/usr/lib/x86_64-linux-gnu/libcrypto.so.3", "CRYPTO_memcmp", elfsym.TypeFunc, true, 4, ""},
		// xor %eax,%eax; ret
		{"/usr/lib/x86_64-linux-gnu/libcrypto.so.3", "OPENSSL_version_minor", elfsym.TypeFunc, false, 0, "shorter than the 5-byte jump"},
		// memmove's code branches to memcpy+3.
		{"/lib/x86_64-linux-gnu/libc.so.6", "memcpy", elfsym.TypeFunc, false, 0, "a branch elsewhere in .text targets +3"},
	}
	objs := map[string]*elfsym.Object{}
	for _, tt := range tests {
		t.Run(tt.fn, func(t *testing.T) {
			obj := objs[tt.lib]
			if obj == nil {
				var err error
				if obj, err = elfsym.Open(tt.lib); err != nil {
					t.Fatal(err)
				}
				objs[tt.lib] = obj
				if n, _ := obj.PaddedFuncs(); n != 0 || obj.EntryFuncs() == 0 {
					t.Errorf("%s: %d padded, %d entry functions", tt.lib, n, obj.EntryFuncs())
				}
			}
			s, err := obj.Lookup(tt.fn, tt.typ)
			if err != nil {
				t.Fatal(err)
			}
			if s.Pad || s.Entry != tt.entry || s.EntryOffset != tt.off || !strings.Contains(s.Refused, tt.refused) ||
				tt.entry && s.Refused != "" {
				t.Errorf("%s: %+v", tt.fn, s)
			}
		})
	}
}
