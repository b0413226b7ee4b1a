package dsc

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkParse_1000Funcs parses a description replacing 1000 functions
// with 10 data references (the size `make bench` packs).
func BenchmarkParse_1000Funcs(b *testing.B) {
	var s strings.Builder
	s.WriteString("! 1000 functions, CVE-2099-0001\nlp_big.so\n@libbig.so.1\n")
	for i := range 1000 {
		fmt.Fprintf(&s, "big_%04d:big_%04d_lp\n", i, i)
	}
	for i := range 10 {
		fmt.Fprintf(&s, "#var_%d:var_%d_ref\n", i, i)
	}
	data := []byte(s.String())
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		d, err := Parse("/tmp/big.dsc", data)
		if err != nil || len(d.Funcs) != 1000 {
			b.Fatalf("parse: %d functions, %v", len(d.Funcs), err)
		}
	}
}
