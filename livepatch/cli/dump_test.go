package cli

import (
	"flag"
	"os"
	"testing"
)

var updateDumpGolden = flag.Bool("update-dump", false, "rewrite testdata/dump*.golden")

// TestDumpCommand_Golden pins the human output of `ulp dump` on the sample
// container that the container package's fuzzer is seeded with.
func TestDumpCommand_Golden(t *testing.T) {
	const sample = "../container/testdata/sample.so"
	tests := []struct {
		golden string
		args   []string
	}{
		{"testdata/dump.golden", []string{"dump", sample}},
		{"testdata/dump-revert.golden", []string{"dump", "--revert", sample}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			out, stderr, code := runBuildCommand(t, tt.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if *updateDumpGolden {
				if err := os.WriteFile(tt.golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(tt.golden)
			if err != nil {
				t.Fatal(err)
			}
			if out != string(want) {
				t.Errorf("output differs from %s (go test -run TestDumpCommand_Golden -update-dump):\n%s", tt.golden, out)
			}
		})
	}
}
