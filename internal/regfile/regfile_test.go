package regfile_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"ulp/internal/regfile"
)

// TestOpen: a regular file is read; a FIFO (whose open for reading would
// block), a device and a folder are refused at once, naming their kind.
func TestOpen(t *testing.T) {
	dir := t.TempDir()
	reg := filepath.Join(dir, "f")
	if err := os.WriteFile(reg, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	f, fi, err := regfile.Open(reg)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if string(b) != "data" || fi.Size() != 4 || f.Name() != reg {
		t.Errorf("read %q, size %d, name %s", b, fi.Size(), f.Name())
	}
	for path, kind := range map[string]string{fifo: "a FIFO", "/dev/null": "a device", dir: "a directory"} {
		done := make(chan error, 1)
		go func() {
			_, _, err := regfile.Open(path)
			done <- err
		}()
		select {
		case err := <-done:
			if !errors.Is(err, regfile.ErrNotRegular) || !strings.Contains(err.Error(), "("+kind+")") {
				t.Errorf("Open(%s) = %v, want ErrNotRegular (%s)", path, err, kind)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Open(%s) blocks", path)
		}
	}
}
