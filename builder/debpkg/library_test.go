package debpkg

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"ulp/builder/debiantest"
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

// TestFindInDeb finds libcrypto.so.3 in Debian's own libssl3 package of
// the version the builder tests patch, by its build-id, and refuses the
// build-id of another build.
func TestFindInDeb(t *testing.T) {
	root := debiantest.Extract(t, "libssl3", debiantest.OpenSSLOld)
	debs, err := filepath.Glob(filepath.Join(filepath.Dir(root), "libssl3_*.deb"))
	if err != nil || len(debs) != 1 {
		t.Fatalf("the libssl3 package next to %s: %q, %v", root, debs, err)
	}
	id, err := fileBuildID(filepath.Join(debiantest.LibDir(root), "libcrypto.so.3"))
	if err != nil {
		t.Fatal(err)
	}
	lib, err := FindInDeb(t.Context(), debs[0], container.Target{Name: "libcrypto.so.3", BuildID: id})
	if err != nil {
		t.Fatal(err)
	}
	want := Library{Package: "libssl3", Version: debiantest.OpenSSLOld, Source: "openssl", Path: "/usr/lib/x86_64-linux-gnu/libcrypto.so.3"}
	if *lib != want {
		t.Errorf("FindInDeb = %+v, want %+v", *lib, want)
	}
	other := append([]byte{}, id...)
	other[0] ^= 0xff
	for _, target := range []container.Target{{Name: "libcrypto.so.3", BuildID: other}, {Name: "libc.so.6", BuildID: id}} {
		if _, err := FindInDeb(t.Context(), debs[0], target); !errors.Is(err, ErrNotInDeb) {
			t.Errorf("FindInDeb(%s %x) = %v, want ErrNotInDeb", target.Name, target.BuildID, err)
		}
	}
	if _, err := FindInDeb(t.Context(), debs[0], container.Target{Name: "libcrypto.so.3"}); err == nil {
		t.Errorf("FindInDeb without a build-id succeeded")
	}
	if _, err := FindInDeb(t.Context(), filepath.Join(root, "usr/lib/x86_64-linux-gnu/libcrypto.so.3"), container.Target{Name: "libcrypto.so.3", BuildID: id}); err == nil {
		t.Errorf("FindInDeb of a file that is no .deb succeeded")
	}
}
