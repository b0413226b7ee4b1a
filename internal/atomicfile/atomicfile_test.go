package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestWrite_InjectedWriteError(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	injected := errors.New("disk on fire")
	err := Write(path, 0o644, func(w io.Writer) error {
		if _, err := w.Write([]byte("partial")); err != nil {
			return err
		}
		return injected
	})
	if !errors.Is(err, injected) {
		t.Fatalf("err = %v, want the injected error", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Errorf("file = %q, want it untouched", b)
	}
	if got := listDir(t, dir); !slices.Equal(got, []string{"f"}) {
		t.Errorf("folder holds %v, want only f", got)
	}
	if err := Write(path, 0o600, func(w io.Writer) error { _, err := w.Write([]byte("new")); return err }); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if b, _ := os.ReadFile(path); err != nil || string(b) != "new" || fi.Mode().Perm() != 0o600 {
		t.Errorf("after a good write: %q, %v, %v", b, fi.Mode(), err)
	}
	if got := listDir(t, dir); !slices.Equal(got, []string{"f"}) {
		t.Errorf("folder holds %v, want only f", got)
	}
}

func TestWrite_MissingFolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no", "f")
	err := Write(path, 0o644, func(w io.Writer) error { return nil })
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want ErrNotExist", err)
	}
}

func TestRemove(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Remove(path); err != nil {
		t.Fatal(err)
	}
	if got := listDir(t, dir); len(got) != 0 {
		t.Errorf("folder holds %v after Remove", got)
	}
	if err := Remove(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("second Remove: %v, want ErrNotExist", err)
	}
}
