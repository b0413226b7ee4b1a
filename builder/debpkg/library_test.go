package debpkg

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"ulp/livepatch/container"
)

// TestFindLibrary finds the package of the system's own libc.so.6 by its
// build-id, and none for another build-id.
func TestFindLibrary(t *testing.T) {
	if _, err := exec.LookPath("dpkg-query"); err != nil {
		t.Fatalf("dpkg-query: %v", err) // Debian: every test machine has dpkg
	}
	const libc = "/lib/x86_64-linux-gnu/libc.so.6"
	id, err := fileBuildID(libc)
	if err != nil {
		t.Fatal(err)
	}
	want, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", "libc6").Output()
	if err != nil {
		t.Fatal(err)
	}
	lib, err := FindLibrary(t.Context(), container.Target{Name: "libc.so.6", BuildID: id})
	if err != nil {
		t.Fatal(err)
	}
	if lib.Package != "libc6" || lib.Version != strings.TrimSpace(string(want)) || lib.Source != "glibc" || lib.Path != libc {
		t.Errorf("FindLibrary(libc.so.6) = %+v, want libc6 %s from glibc at %s", lib, want, libc)
	}
	other := append([]byte{}, id...)
	other[0] ^= 0xff
	for _, target := range []container.Target{
		{Name: "libc.so.6", BuildID: other},
		{Name: "libulp-nonexistent.so.9", BuildID: id},
	} {
		if _, err := FindLibrary(t.Context(), target); !errors.Is(err, ErrNotInstalled) {
			t.Errorf("FindLibrary(%s %x) = %v, want ErrNotInstalled", target.Name, target.BuildID, err)
		}
	}
	if _, err := FindLibrary(t.Context(), container.Target{Name: "*", BuildID: id}); err == nil || errors.Is(err, ErrNotInstalled) {
		t.Errorf("FindLibrary(*) = %v, want a refused name", err)
	}
}
