package active

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"ulp/livepatch/container"
)

func TestInstallRemove(t *testing.T) {
	sample := filepath.Join("..", "container", "testdata", "sample.so")
	c, err := container.Open(sample)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "a", "active")
	p, err := Install(dir, sample, open(t, sample))
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o644 || p != filepath.Join(dir, "sample.so") {
		t.Fatalf("installed %s: %v %v", p, fi, err)
	}
	if _, err := Install(dir, sample, open(t, sample)); err != nil { // again: replaced in place
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "junk.so"), []byte("not a container"), 0o644)
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("folder holds %v (a temporary file left?)", ents)
	}
	gone, err := Remove(dir, func(f *container.File) bool { return f.Apply.Target.Name == "other" })
	if err != nil || len(gone) != 0 {
		t.Errorf("removed %v, %v", gone, err)
	}
	gone, err = Remove(dir, func(f *container.File) bool { return f.Apply.ID == c.Apply.ID })
	if err != nil || len(gone) != 1 || gone[0] != p {
		t.Errorf("removed %v, %v", gone, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "junk.so")); err != nil {
		t.Error("a file that is not a container was removed")
	}
	if gone, err := Remove(filepath.Join(dir, "missing"), func(*container.File) bool { return true }); err != nil || gone != nil {
		t.Errorf("missing folder: %v, %v", gone, err)
	}
}

func TestInstall_UnsafeFolder(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	sample := filepath.Join("..", "container", "testdata", "sample.so")
	_, err := Install(dir, sample, open(t, sample))
	if !errors.Is(err, ErrUnsafe) {
		t.Errorf("err %v, want ErrUnsafe", err)
	}
}

func TestDir(t *testing.T) {
	t.Setenv(EnvDir, "")
	if Dir() != DefaultDir {
		t.Errorf("Dir() = %s", Dir())
	}
	t.Setenv(EnvDir, "/x/y")
	if Dir() != "/x/y" {
		t.Errorf("Dir() = %s", Dir())
	}
}

// open opens path for the test's length.
func open(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
