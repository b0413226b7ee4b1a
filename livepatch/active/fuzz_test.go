package active

import (
	"bufio"
	"encoding/binary"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"ulp/internal/testenv"
)

// harness is the runtime's container parsing (libpulp/active.c) compiled
// with the address and undefined-behaviour sanitizers into a program that
// answers one byte per input.
type harness struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

func startHarness(t testing.TB) *harness {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "harness")
	testenv.CompileC(t, bin, []string{"-O1", "-g", "-D_GNU_SOURCE", "-fsanitize=address,undefined",
		"-fno-sanitize-recover=all", "-I", filepath.Join(testenv.ModuleRoot(), "libpulp")}, filepath.Join("testdata", "harness.c"))
	cmd := exec.Command(bin)
	in, out := testenv.StartPiped(t, cmd)
	return &harness{cmd: cmd, in: in, out: bufio.NewReader(out)}
}

// parse sends b and reports whether the runtime accepted it.
func (h *harness) parse(t *testing.T, b []byte) bool {
	t.Helper()
	msg := binary.LittleEndian.AppendUint32(nil, uint32(len(b)))
	if _, err := h.in.Write(append(msg, b...)); err != nil {
		t.Fatalf("harness: %v", err)
	}
	r, err := h.out.ReadByte()
	if err != nil {
		t.Fatalf("the runtime's parser crashed on %d bytes (sanitizer report above): %v", len(b), err)
	}
	return r == 0
}

func sample(t testing.TB) []byte {
	b, err := os.ReadFile(filepath.Join("..", "container", "testdata", "sample.so"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRuntimeParser: the runtime accepts a real container and refuses
// damaged ones without crashing.
func TestRuntimeParser(t *testing.T) {
	h := startHarness(t)
	b := sample(t)
	if !h.parse(t, b) {
		t.Error("a valid container refused")
	}
	for _, n := range []int{0, 4, 64, len(b) / 2, len(b) - 1} {
		if h.parse(t, b[:n]) {
			t.Errorf("%d-byte prefix accepted", n)
		}
	}
}

// FuzzRuntimeParser feeds the runtime's parser of the patch-on-start
// folder's files (ELF sections, .ulp, labels) with hostile bytes.
func FuzzRuntimeParser(f *testing.F) {
	b := sample(f)
	f.Add(b)
	f.Add(b[:len(b)/2])
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	h := startHarness(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 1<<22 {
			return
		}
		h.parse(t, in)
	})
}
