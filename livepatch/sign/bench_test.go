package sign_test

import (
	"bytes"
	"os"
	"testing"

	"ulp/livepatch/sign"
)

// BenchmarkCheck measures the signature check (the cost the agent adds to
// a trigger under a trust policy) of the sample container and of a copy of
// the system's libc, a large ELF file.
func BenchmarkCheck(b *testing.B) {
	_, key := newKey(b)
	libc, err := os.ReadFile("/lib/x86_64-linux-gnu/libc.so.6")
	if err != nil {
		b.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		in   []byte
	}{{"container", readFile(b, "unsigned.so")}, {"libc", libc}} {
		signed, err := sign.Sign(tt.in, key)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tt.name, func(b *testing.B) {
			b.SetBytes(int64(len(signed)))
			for b.Loop() {
				if _, err := sign.Check(bytes.NewReader(signed), int64(len(signed))); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
