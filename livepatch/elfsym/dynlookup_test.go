package elfsym_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"ulp/internal/testenv"
	"ulp/livepatch/elfsym"
)

// TestExportsObject looks a data object up through the dynamic hash tables
// of real objects, both hash styles, and refuses what is not an exported,
// defined data object of that name.
func TestExportsObject(t *testing.T) {
	testenv.Require(t, testenv.CC)
	dir := t.TempDir()
	src := filepath.Join(dir, "lib.c")
	if err := os.WriteFile(src, []byte(`
int ulp_abi = 1;                    /* exported data object */
int ulp_abi_other = 2;
__attribute__((visibility("hidden"))) int hidden_obj = 3;
int ulp_func(void) { return ulp_abi + hidden_obj; }
extern int undefined_obj;
int use(void) { return undefined_obj; }
`), 0o644); err != nil {
		t.Fatal(err)
	}
	build := func(name string, flags ...string) string {
		out := filepath.Join(dir, name)
		testenv.CompileC(t, out, append([]string{"-shared", "-fPIC", "-Wl,--unresolved-symbols=ignore-all"}, flags...), src)
		return out
	}
	gnu, sysv, both := build("gnu.so", "-Wl,--hash-style=gnu"), build("sysv.so", "-Wl,--hash-style=sysv"), build("both.so", "-Wl,--hash-style=both")
	tests := []struct {
		file, name string
		want       bool
	}{
		{gnu, "ulp_abi", true},
		{sysv, "ulp_abi", true},
		{both, "ulp_abi", true},
		{gnu, "ulp_abi_other", true},
		{gnu, "ulp_ab", false},       // a prefix
		{sysv, "ulp_abi_oth", false}, // a prefix
		{gnu, "ulp_func", false},     // a function
		{gnu, "hidden_obj", false},   // not exported
		{sysv, "undefined_obj", false},
		{gnu, "nosuch", false},
		{testenv.Artifact(t, "libpulp.so.0"), "ulp_abi", true},
		{"/proc/self/exe", "ulp_abi", false},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.file)+"/"+tt.name, func(t *testing.T) {
			f, err := os.Open(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := elfsym.ExportsObject(f, tt.name)
			if err != nil || got != tt.want {
				t.Errorf("ExportsObject = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
	if _, err := elfsym.ExportsObject(bytes.NewReader([]byte("not an ELF file at all, but long enough for a header.........")), "x"); err == nil {
		t.Error("no error for a file that is not ELF")
	}
}

// FuzzExportsObject runs the lookup and Soname on arbitrary bytes: it must neither
// panic nor allocate from unchecked sizes.
func FuzzExportsObject(f *testing.F) {
	if b, err := os.ReadFile("/proc/self/exe"); err == nil {
		f.Add(b[:min(len(b), 1<<16)])
	}
	if p, ok := os.LookupEnv("ULP_BUILD_DIR"); ok {
		if b, err := os.ReadFile(filepath.Join(p, "libpulp.so.0")); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		elfsym.ExportsObject(bytes.NewReader(b), "ulp_abi")
		if ef, err := elfsym.NewFile(bytes.NewReader(b), int64(len(b)), "x"); err == nil {
			ef.Soname()
		}
	})
}

// TestSoname reads DT_SONAME, and "" from an object without one.
func TestSoname(t *testing.T) {
	testenv.Require(t, testenv.CC)
	dir := t.TempDir()
	src := filepath.Join(dir, "lib.c")
	if err := os.WriteFile(src, []byte("int f(void) { return 1; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		flags []string
		want  string
	}{
		{[]string{"-Wl,-soname,libx.so.0"}, "libx.so.0"},
		{nil, ""},
	} {
		out := filepath.Join(dir, "libx.so.0.0.0")
		testenv.CompileC(t, out, append([]string{"-shared", "-fPIC"}, tt.flags...), src)
		f, err := elfsym.OpenFile(out)
		if err != nil {
			t.Fatal(err)
		}
		got, err := f.Soname()
		f.Close()
		if err != nil || got != tt.want {
			t.Errorf("%v: Soname = %q, %v; want %q", tt.flags, got, err, tt.want)
		}
	}
}
