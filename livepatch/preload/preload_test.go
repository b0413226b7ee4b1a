package preload

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"ulp/internal/testenv"
)

func TestEntries(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"/a.so\n", []string{"/a.so"}},
		{"/a.so /b.so:/c.so\n\t/d.so", []string{"/a.so", "/b.so", "/c.so", "/d.so"}},
		{"# /x.so\n/a.so # /y.so\n", []string{"/a.so"}},
	}
	for _, tt := range tests {
		if got := Entries([]byte(tt.in)); !slices.Equal(got, tt.want) {
			t.Errorf("Entries(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRewriteDelete(t *testing.T) {
	del := func(e string) string {
		if isRuntime(e) {
			return ""
		}
		return e
	}
	tests := []struct {
		in, want string
		changed  bool
	}{
		{"", "", false},
		{"/a.so\n", "/a.so\n", false},
		{"/a.so\n/lib/libpulp.so.0\n", "/a.so\n", true},
		{"/lib/libpulp.so.0\n/a.so\n", "/a.so\n", true},
		{"/a.so /lib/libpulp.so.0 /b.so\n", "/a.so  /b.so\n", true},
		{"/lib/libpulp.so.0 # the runtime\n", " # the runtime\n", true},
		{"# /lib/libpulp.so.0\n", "# /lib/libpulp.so.0\n", false},
		{"/a.so:/lib/libpulp.so.0", "/a.so:", true},
	}
	for _, tt := range tests {
		got, changed := rewrite([]byte(tt.in), del)
		if string(got) != tt.want || changed != tt.changed {
			t.Errorf("rewrite(%q) = %q, %v; want %q, %v", tt.in, got, changed, tt.want, tt.changed)
		}
	}
}

// scratch returns a root holding etc/ and the real runtime at
// /usr/lib/libpulp.so.0, and a file that is not a library at
// /bad/libpulp.so.0.
func scratch(t *testing.T) (root string, rt string) {
	t.Helper()
	root = t.TempDir()
	b, err := os.ReadFile(testenv.Artifact(t, RuntimeName))
	if err != nil {
		t.Fatal(err)
	}
	for dir, data := range map[string][]byte{"usr/lib": b, "bad": []byte("not a library\n")} {
		if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, dir, RuntimeName), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	return root, "/usr/lib/" + RuntimeName
}

// TestRoundTrip enables and disables the runtime on a scratch root whose
// preload list has other entries: they are kept byte for byte, the mode
// is kept, and no temporary file is left.
func TestRoundTrip(t *testing.T) {
	root, rt := scratch(t)
	m := Manager{Root: root}
	file := filepath.Join(root, "etc/ld.so.preload")
	orig := []byte("# site list\n/usr/lib/libjemalloc.so.2 /opt/a.so\n")
	if err := os.WriteFile(file, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	changed, err := m.Enable(t.Context(), rt)
	if err != nil || !changed {
		t.Fatalf("Enable = %v, %v", changed, err)
	}
	want := string(orig) + rt + "\n"
	if b, _ := os.ReadFile(file); string(b) != want {
		t.Errorf("after Enable: %q, want %q", b, want)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode after Enable: %v, %v; want 0600", fi.Mode(), err)
	}
	st, err := m.Status()
	if err != nil || st.Runtime != rt || st.Missing || !slices.Equal(st.Others, []string{"/usr/lib/libjemalloc.so.2", "/opt/a.so"}) {
		t.Errorf("Status = %+v, %v", st, err)
	}
	if changed, err := m.Enable(t.Context(), rt); err != nil || changed {
		t.Errorf("second Enable = %v, %v; want no change", changed, err)
	}
	if changed, err := m.Disable(); err != nil || !changed {
		t.Fatalf("Disable = %v, %v", changed, err)
	}
	if b, _ := os.ReadFile(file); !bytes.Equal(b, orig) {
		t.Errorf("after Disable: %q, want the original %q", b, orig)
	}
	if changed, err := m.Disable(); err != nil || changed {
		t.Errorf("second Disable = %v, %v; want no change", changed, err)
	}
	if st, err := m.Status(); err != nil || st.Enabled() {
		t.Errorf("Status after Disable = %+v, %v", st, err)
	}
	ents, _ := os.ReadDir(filepath.Join(root, "etc"))
	if len(ents) != 1 {
		t.Errorf("etc holds %v, want only ld.so.preload", ents)
	}
}

// TestCreateAndRemove: a list that held only the runtime is removed by
// Disable; an existing runtime entry at another path is replaced in place.
func TestCreateAndRemove(t *testing.T) {
	root, rt := scratch(t)
	m := Manager{Root: root}
	file := filepath.Join(root, "etc/ld.so.preload")
	if err := os.WriteFile(file, []byte("/old/libpulp.so.0 /a.so\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if st, _ := m.Status(); !st.Missing {
		t.Errorf("Status of a missing runtime = %+v, want Missing", st)
	}
	if _, err := m.Enable(t.Context(), rt); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(file); string(b) != rt+" /a.so\n" {
		t.Errorf("after replacing: %q", b)
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Enable(t.Context(), rt); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(file); string(b) != rt+"\n" {
		t.Errorf("created: %q", b)
	}
	if _, err := m.Disable(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after disabling the only entry: %v, want the file removed", err)
	}
}

// TestRefused: a runtime that does not load, or a bad path, changes nothing.
func TestRefused(t *testing.T) {
	root, _ := scratch(t)
	m := Manager{Root: root}
	file := filepath.Join(root, "etc/ld.so.preload")
	orig := []byte("/a.so\n")
	if err := os.WriteFile(file, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		rt   string
		want error
	}{
		{"/bad/" + RuntimeName, ErrNotLoadable},
		{"/missing/" + RuntimeName, ErrNotLoadable},
		{"usr/lib/" + RuntimeName, ErrBadRuntime},
		{"/usr/lib/libc.so.6", ErrBadRuntime},
		{"/usr/lib:x/" + RuntimeName, ErrBadRuntime},
	}
	for _, tt := range tests {
		changed, err := m.Enable(t.Context(), tt.rt)
		if !errors.Is(err, tt.want) || changed {
			t.Errorf("Enable(%q) = %v, %v; want %v", tt.rt, changed, err, tt.want)
		}
		if b, _ := os.ReadFile(file); !bytes.Equal(b, orig) {
			t.Errorf("Enable(%q) changed the file: %q", tt.rt, b)
		}
	}
}

// FuzzRewrite: deleting the runtime's entries leaves none of them and
// every other entry in order.
func FuzzRewrite(f *testing.F) {
	seed, err := os.ReadFile("testdata/ld.so.preload")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte("/a.so:/b/libpulp.so.0\t# c\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, _ := rewrite(b, func(e string) string {
			if isRuntime(e) {
				return ""
			}
			return e
		})
		var want []string
		for _, e := range Entries(b) {
			if !isRuntime(e) {
				want = append(want, e)
			}
		}
		if got := Entries(out); !slices.Equal(got, want) {
			t.Errorf("entries after delete %q, want %q (from %q to %q)", got, want, b, out)
		}
	})
}

// TestRootNotFollowed: under --root, a user's symbolic links never lead
// root's writes out of the root (etc a link to the user's folder, the
// list a link to a file of the host), a root folder not owned by root or
// writable by others is refused, and the runtime is checked without being
// run: a library whose constructor would leave a mark leaves none.
func TestRootNotFollowed(t *testing.T) {
	testenv.Require(t, testenv.Root, testenv.CC)
	outside := t.TempDir()
	victim := filepath.Join(outside, "victim")
	if err := os.WriteFile(victim, []byte("host file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(outside, "etc"), 0o777); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(outside, "ran-as-root")
	evil := filepath.Join(outside, "evil.c")
	src := "#include <stdio.h>\nint ulp_abi[64] = {1};\n__attribute__((constructor)) static void mark(void) { FILE *f = fopen(\"" + marker + "\", \"w\"); if (f) fclose(f); }\n"
	if err := os.WriteFile(evil, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	link := func(t *testing.T, target, name string) {
		t.Helper()
		if err := os.Symlink(target, name); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(name, 65534, 65534); err != nil { // a user's link
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, root string)
		want  error // nil: Enable succeeds inside the root
	}{
		{"etc links to a user's folder", func(t *testing.T, root string) {
			os.Remove(filepath.Join(root, "etc"))
			link(t, filepath.Join(outside, "etc"), filepath.Join(root, "etc"))
		}, fs.ErrNotExist},
		{"etc links up and out", func(t *testing.T, root string) {
			os.Remove(filepath.Join(root, "etc"))
			rel, _ := filepath.Rel(root, filepath.Join(outside, "etc"))
			link(t, rel, filepath.Join(root, "etc"))
		}, fs.ErrNotExist},
		{"the list links to a host file", func(t *testing.T, root string) {
			link(t, victim, filepath.Join(root, "etc", "ld.so.preload"))
		}, nil},
		{"root writable by others", func(t *testing.T, root string) { os.Chmod(root, 0o777) }, ErrUnsafeRoot},
		{"root owned by a user", func(t *testing.T, root string) { os.Chown(root, 65534, 65534) }, ErrUnsafeRoot},
		{"etc owned by a user", func(t *testing.T, root string) { os.Chown(filepath.Join(root, "etc"), 65534, 65534) }, ErrUnsafeRoot},
		{"a runtime that would run", func(t *testing.T, root string) {
			testenv.CompileC(t, filepath.Join(root, "usr/lib", RuntimeName), []string{"-shared", "-fPIC"}, evil)
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, rt := scratch(t)
			tt.setup(t, root)
			_, err := Manager{Root: root}.Enable(t.Context(), rt)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("Enable = %v, want %v", err, tt.want)
			}
			if b, _ := os.ReadFile(victim); string(b) != "host file\n" {
				t.Errorf("the host file was written: %q", b)
			}
			if ents, _ := os.ReadDir(filepath.Join(outside, "etc")); len(ents) != 0 {
				t.Errorf("the user's folder holds %v", ents)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Error("the root's runtime ran as root")
			}
			if tt.want == nil {
				if b, err := os.ReadFile(filepath.Join(root, "etc", "ld.so.preload")); err != nil || string(b) != rt+"\n" {
					t.Errorf("list in the root: %q, %v", b, err)
				}
			}
		})
	}
}
