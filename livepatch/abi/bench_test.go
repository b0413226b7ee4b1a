package abi

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"ulp/internal/testenv"
)

// BenchmarkMallocFree measures one malloc(32) + free in a C program, with
// and without the runtime preloaded: the cost of the allocator wrappers.
// The program's start-up is included once per run of b.N pairs.
func BenchmarkMallocFree(b *testing.B) {
	for _, bc := range []struct {
		name    string
		preload bool
	}{{"plain", false}, {"preloaded", true}} {
		b.Run(bc.name, func(b *testing.B) {
			exe := filepath.Join(fixtures(b), "mallocbench")
			var env []string
			if bc.preload {
				env = []string{"LD_PRELOAD=" + testenv.Artifact(b, "libpulp.so.0")}
			}
			cmd := exec.Command(exe, strconv.Itoa(b.N))
			cmd.Env = env
			b.ResetTimer()
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("%v: %s", err, out)
			}
		})
	}
}

// BenchmarkStartup measures starting and running a small dynamically linked
// program to its exit, with and without the runtime preloaded.
func BenchmarkStartup(b *testing.B) {
	for _, bc := range []struct {
		name    string
		preload bool
	}{{"plain", false}, {"preloaded", true}} {
		b.Run(bc.name, func(b *testing.B) {
			exe := filepath.Join(fixtures(b), "simple")
			var env []string
			if bc.preload {
				env = []string{"LD_PRELOAD=" + testenv.Artifact(b, "libpulp.so.0")}
			}
			for b.Loop() {
				cmd := exec.Command(exe)
				cmd.Env = env
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("%v: %s", err, out)
				}
			}
		})
	}
}
