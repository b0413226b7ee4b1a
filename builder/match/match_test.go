package match

import (
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"ulp/builder/obj"
	"ulp/internal/testenv"
)

const tree = `
__attribute__((noinline)) static int helper(int x) { return (x ^ 0x55) * 13 + 7; }
int api(int x) { return helper(x) * 2; }
`

// other has helper's code in an unnamed static function, and an api of
// other code.
const other = `
static int twin(int x) { return (x ^ 0x55) * 13 + 7; }
int (*volatile twin_ptr)(int) = twin;
int api(int x) { return ((x ^ 0x55) * 13 + 7) * 2 + x; }
`

func build(t *testing.T, dir, name, src string, args ...string) string {
	t.Helper()
	c := filepath.Join(dir, name+".c")
	if err := os.WriteFile(c, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name)
	testenv.CompileC(t, out, append([]string{"-O2", "-fPIC"}, args...), c)
	return out
}

// TestMatch_Corroborated checks that a small static function is located
// only where something besides its bytes places it.
func TestMatch_Corroborated(t *testing.T) {
	testenv.Require(t, testenv.CC)
	dir := t.TempDir()
	o := build(t, dir, "tree.o", tree, "-c")
	data, err := os.ReadFile(o)
	if err != nil {
		t.Fatal(err)
	}
	fo, err := obj.Read(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, src string
		located   bool
	}{
		{"same source", tree, true},
		{"an unrelated twin", other, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			full := build(t, dir, "lib-"+tc.name+".so", tc.src, "-shared")
			stripped := full + ".stripped"
			if out, err := exec.Command("strip", "-o", stripped, full).CombinedOutput(); err != nil {
				t.Fatalf("strip: %v\n%s", err, out)
			}
			l, err := Open(stripped, "")
			if err != nil {
				t.Fatal(err)
			}
			res := l.Match(fo.Funcs)
			off, ok := res.Funcs["helper"]
			if ok != tc.located {
				t.Fatalf("helper located %v (at %#x; missed: %v), want %v", ok, off, res.Missed["helper"], tc.located)
			}
			if !ok {
				t.Logf("helper: %v", res.Missed["helper"])
				if !errors.Is(res.Missed["helper"], ErrUncorroborated) {
					t.Fatalf("helper missed for %v", res.Missed["helper"])
				}
				return
			}
			ef, err := elf.Open(full)
			if err != nil {
				t.Fatal(err)
			}
			defer ef.Close()
			syms, _ := ef.Symbols()
			for _, s := range syms {
				if s.Name == "helper" && s.Value != off {
					t.Fatalf("helper located at %#x, the symbol table says %#x", off, s.Value)
				}
			}
		})
	}
}
