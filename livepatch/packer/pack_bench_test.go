package packer

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ulp/internal/testenv"
	"ulp/livepatch/dsc"
)

// BenchmarkPack_1000Funcs packs a livepatch replacing every function of a
// library of 1000 padded functions (built with cc), writing the container
// to a new file each time: what `ulp packer` does, without the process
// start. The harness of `make bench` times the command itself.
func BenchmarkPack_1000Funcs(b *testing.B) {
	testenv.Require(b, testenv.CC)
	dir := b.TempDir()
	var lib, lp, desc strings.Builder
	fmt.Fprintf(&desc, "! 1000 functions\n%s\n@%s\n", filepath.Join(dir, "lp_big.so"), filepath.Join(dir, "libbig.so.1"))
	for i := range 1000 {
		fmt.Fprintf(&lib, "__attribute__((noipa)) long big_%04d(long x) { return x + %d; }\n", i, i)
		fmt.Fprintf(&lp, "__attribute__((noipa)) long big_%04d_lp(long x) { return x + %d; }\n", i, i+1)
		fmt.Fprintf(&desc, "big_%04d:big_%04d_lp\n", i, i)
	}
	for name, body := range map[string]string{"big.c": lib.String(), "lp_big.c": lp.String()} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	testenv.CompileC(b, filepath.Join(dir, "libbig.so.1"), []string{"-shared", "-fPIC", "-O2",
		"-fpatchable-function-entry=16,14", "-Wl,--build-id", "-Wl,-soname,libbig.so.1"}, filepath.Join(dir, "big.c"))
	testenv.CompileC(b, filepath.Join(dir, "lp_big.so"), []string{"-shared", "-fPIC", "-O2", "-Wl,--build-id"},
		filepath.Join(dir, "lp_big.c"))
	d, err := dsc.Parse(filepath.Join(dir, "big.dsc"), []byte(desc.String()))
	if err != nil {
		b.Fatal(err)
	}
	out := filepath.Join(dir, "container.so")
	for b.Loop() {
		res, err := Pack(d, Options{Out: out})
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Apply.Funcs) != 1000 {
			b.Fatalf("%d functions packed", len(res.Apply.Funcs))
		}
	}
}
