package packer

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"ulp/internal/testenv"
	"ulp/livepatch/container"
	"ulp/livepatch/dsc"
	"ulp/livepatch/elfsym"
	"ulp/livepatch/packer/packertest"
)

// fullDsc is a description with every kind of line; its last reference
// gives the offsets by hand (the true ones: the packer checks them).
func fullDsc(t *testing.T, fx *packertest.Fixture) string {
	return fmt.Sprintf(`! fixes CVE-2024-2961 and bsc#1200316
livepatch.so
@libtarget.so.1
foo:foo_lp
helper:helper_lp
#counter:counter_ref
#%%tlsvar:tlsvar_idx
#counter:counter_ref:%x:%x
! jsc#SLE-20049
`, symValue(t, fx.Target, "counter"), symValue(t, fx.Livepatch, "counter_ref"))
}

// symValue returns st_value of the named symbol, read with debug/elf
// directly (independently of elfsym).
func symValue(t *testing.T, path, name string) uint64 {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, _ := f.Symbols()
	dyn, _ := f.DynamicSymbols()
	for _, s := range append(syms, dyn...) {
		if s.Name == name && s.Section != elf.SHN_UNDEF {
			return s.Value
		}
	}
	t.Fatalf("%s: no symbol %s", path, name)
	return 0
}

func pack(t *testing.T, dscPath string, o Options) *Result {
	t.Helper()
	d, err := dsc.ParseFile(dscPath)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Pack(d, o)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func readelfSections(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("readelf", "-SW", path).CombinedOutput()
	if err != nil {
		t.Fatalf("readelf -S %s: %v\n%s", path, err, out)
	}
	return string(out)
}

func TestPack_RealLibraries(t *testing.T) {
	for _, cf := range []bool{false, true} {
		t.Run(fmt.Sprintf("cf-protection=%v", cf), func(t *testing.T) {
			fx := packertest.Build(t, packertest.Options{CFProtection: cf})
			probe := packertest.Probe(t, fx.Dir)
			wantEntry := uint8(0)
			if cf {
				wantEntry = 4
			}
			res := pack(t, fx.WriteDsc(t, "p.dsc", fullDsc(t, fx)), Options{})
			if res.Out != fx.Livepatch {
				t.Errorf("Out = %s, want in place %s", res.Out, fx.Livepatch)
			}

			sections := readelfSections(t, fx.Livepatch)
			for _, s := range []string{" .ulp ", " .ulp.rev ", " .ulp.comments "} {
				if !strings.Contains(sections, s) {
					t.Errorf("readelf -S lacks %q:\n%s", s, sections)
				}
			}
			if out, err := packertest.Call(t, probe, fx.Livepatch, "foo_lp", "5"); err != nil || out != "1005" {
				t.Errorf("packed container: probe foo_lp(5) = %q, %v; want 1005", out, err)
			}

			c, err := container.Open(fx.Livepatch)
			if err != nil {
				t.Fatal(err)
			}
			bid, err := exec.Command("readelf", "-n", fx.Target).Output()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(bid), fmt.Sprintf("%x", c.Apply.Target.BuildID)) {
				t.Errorf("target build-id %x not in readelf -n:\n%s", c.Apply.Target.BuildID, bid)
			}
			want := &container.Spec{
				Kind:   container.Apply,
				ID:     c.Apply.ID,
				Target: container.Target{Name: "libtarget.so.1", BuildID: c.Apply.Target.BuildID},
				Funcs: []container.Func{
					{Old: "foo", New: "foo_lp", OldOffset: symValue(t, fx.Target, "foo"), NewOffset: symValue(t, fx.Livepatch, "foo_lp"),
						Mechanism: container.MechPad, EntryOffset: wantEntry},
					{Old: "helper", New: "helper_lp", OldOffset: symValue(t, fx.Target, "helper"), NewOffset: symValue(t, fx.Livepatch, "helper_lp"),
						Mechanism: container.MechPad, EntryOffset: wantEntry},
				},
				Refs: []container.Ref{
					{TargetVar: "counter", PatchRef: "counter_ref", TargetOffset: symValue(t, fx.Target, "counter"), PatchOffset: symValue(t, fx.Livepatch, "counter_ref")},
					{TargetVar: "tlsvar", PatchRef: "tlsvar_idx", TargetOffset: symValue(t, fx.Target, "tlsvar"), PatchOffset: symValue(t, fx.Livepatch, "tlsvar_idx"), TLS: true},
					{TargetVar: "counter", PatchRef: "counter_ref", TargetOffset: symValue(t, fx.Target, "counter"), PatchOffset: symValue(t, fx.Livepatch, "counter_ref")},
				},
				Comments: "fixes CVE-2024-2961 and bsc#1200316\njsc#SLE-20049",
				Labels:   []string{"CVE-2024-2961", "bsc#1200316", "jsc#SLE-20049"},
			}
			if !reflect.DeepEqual(c.Apply, want) {
				t.Errorf("apply spec:\n got %+v\nwant %+v", c.Apply, want)
			}
			if !reflect.DeepEqual(res.Apply, c.Apply) {
				t.Errorf("Pack result differs from what Open reads:\n%+v\n%+v", res.Apply, c.Apply)
			}
			wantRev := &container.Spec{Kind: container.Revert, ID: want.ID, Target: want.Target, Comments: want.Comments, Labels: want.Labels}
			if !reflect.DeepEqual(c.Revert, wantRev) {
				t.Errorf("revert spec:\n got %+v\nwant %+v", c.Revert, wantRev)
			}
			lpBID, err := elfsym.Open(fx.Livepatch)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(c.BuildID, lpBID.BuildID) {
				t.Errorf("container build-id %x, want %x", c.BuildID, lpBID.BuildID)
			}
			if id, err := patchID(c.BuildID, want); err != nil || id != c.Apply.ID {
				t.Errorf("patch id %v is not the documented hash %v (%v)", c.Apply.ID, id, err)
			}

			// Re-packing in place replaces the sections: same id, same size.
			before, err := os.ReadFile(fx.Livepatch)
			if err != nil {
				t.Fatal(err)
			}
			res2 := pack(t, filepath.Join(fx.Dir, "p.dsc"), Options{})
			after, err := os.ReadFile(fx.Livepatch)
			if err != nil {
				t.Fatal(err)
			}
			if res2.Apply.ID != c.Apply.ID || !bytes.Equal(before, after) {
				t.Errorf("re-pack changed the container: id %v -> %v, %d -> %d bytes", c.Apply.ID, res2.Apply.ID, len(before), len(after))
			}
			if n := strings.Count(readelfSections(t, fx.Livepatch), " .ulp "); n != 1 {
				t.Errorf("after re-pack, .ulp appears %d times", n)
			}

			// Packing against the extract dump gives the same metadata.
			target, err := elfsym.Load(fx.Target, elfsym.LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var js bytes.Buffer
			if err := target.WriteJSON(&js); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(fx.Dir, "target.json"), js.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			jsonOut := filepath.Join(fx.Dir, "from-json.so")
			res3 := pack(t, fx.WriteDsc(t, "j.dsc", strings.Replace(fullDsc(t, fx), "@libtarget.so.1", "@target.json", 1)), Options{Out: jsonOut})
			cj, err := container.Open(jsonOut)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cj.Apply, c.Apply) || !reflect.DeepEqual(cj.Revert, c.Revert) || res3.Out != jsonOut {
				t.Errorf("packing against JSON differs:\n json %+v\n  elf %+v", cj.Apply, c.Apply)
			}
			if out, err := packertest.Call(t, probe, jsonOut, "helper_lp", "1"); err != nil || out != "2001" {
				t.Errorf("probe helper_lp(1) = %q, %v", out, err)
			}
		})
	}
}

// TestPack_EntryMechanism packs a function without the pad: it gets the
// entry mechanism, after endbr64 when the target has one.
func TestPack_EntryMechanism(t *testing.T) {
	for _, cf := range []bool{false, true} {
		t.Run(fmt.Sprintf("cf-protection=%v", cf), func(t *testing.T) {
			fx := packertest.Build(t, packertest.Options{CFProtection: cf})
			res := pack(t, fx.WriteDsc(t, "e.dsc", "livepatch.so\n@libtarget.so.1\nnopad:foo_lp\nfoo:foo_lp\n"), Options{})
			want := []container.Func{
				{Old: "nopad", New: "foo_lp", OldOffset: symValue(t, fx.Target, "nopad"), NewOffset: symValue(t, fx.Livepatch, "foo_lp"),
					Mechanism: container.MechEntry},
				{Old: "foo", New: "foo_lp", OldOffset: symValue(t, fx.Target, "foo"), NewOffset: symValue(t, fx.Livepatch, "foo_lp"),
					Mechanism: container.MechPad},
			}
			if cf {
				want[0].EntryOffset, want[1].EntryOffset = 4, 4
			}
			if !reflect.DeepEqual(res.Apply.Funcs, want) {
				t.Errorf("funcs:\n got %+v\nwant %+v", res.Apply.Funcs, want)
			}
		})
	}
}

func TestPack_Debuginfo(t *testing.T) {
	fx := packertest.Build(t, packertest.Options{})
	obj, err := elfsym.Open(fx.Target)
	if err != nil {
		t.Fatal(err)
	}
	helper := symValue(t, fx.Target, "helper")
	root := filepath.Join(fx.Dir, "debug")
	debugFile := elfsym.DebuginfoPath(root, obj.BuildID)
	if err := os.MkdirAll(filepath.Dir(debugFile), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"objcopy", "--only-keep-debug", fx.Target, debugFile},
		{"strip", "--strip-all", fx.Target},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	dscPath := fx.WriteDsc(t, "d.dsc", "livepatch.so\n@libtarget.so.1\nhelper:helper_lp\n")
	d, err := dsc.ParseFile(dscPath)
	if err != nil {
		t.Fatal(err)
	}
	// Without the debuginfo, the static function is unknown.
	if _, err := Pack(d, Options{}); !errors.Is(err, elfsym.ErrNotFound) && !strings.Contains(fmt.Sprint(err), "symbol not found") {
		t.Fatalf("Pack without debuginfo = %v, want symbol not found", err)
	}
	res := pack(t, dscPath, Options{DebugRoot: root})
	if f := res.Apply.Funcs[0]; f.OldOffset != helper || f.Mechanism != container.MechPad {
		t.Errorf("helper via debuginfo: %+v, want offset %#x with pad", f, helper)
	}
}

func TestPack_AmbiguousLocalName(t *testing.T) {
	fx := packertest.Build(t, packertest.Options{})
	d, err := dsc.ParseFile(fx.WriteDsc(t, "a.dsc", "livepatch.so\n@libtarget.so.1\ntwin:twin_lp\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Pack(d, Options{})
	if err == nil || !strings.Contains(err.Error(), "symbol is ambiguous") || !strings.Contains(err.Error(), "a.dsc:3:1: error:") {
		t.Fatalf("Pack = %v, want an ambiguity error at 3:1", err)
	}
	// The third field picks one of them.
	obj, err := elfsym.Open(fx.Target)
	if err != nil {
		t.Fatal(err)
	}
	var offs []uint64
	for _, s := range obj.Symbols {
		if s.Name == "twin" {
			offs = append(offs, s.Offset)
		}
	}
	if len(offs) != 2 {
		t.Fatalf("want two twin symbols, got %v", offs)
	}
	res := pack(t, fx.WriteDsc(t, "b.dsc", fmt.Sprintf("livepatch.so\n@libtarget.so.1\ntwin:twin_lp:%x\n", offs[1])), Options{})
	if res.Apply.Funcs[0].OldOffset != offs[1] {
		t.Errorf("OldOffset = %#x, want %#x", res.Apply.Funcs[0].OldOffset, offs[1])
	}
}

// TestPack_Errors covers every validation error: each is a *dsc.Error at
// the right line, and nothing is written.
func TestPack_Errors(t *testing.T) {
	fx := packertest.Build(t, packertest.Options{})
	noBuildID := packertest.Build(t, packertest.Options{TargetFlags: []string{"-Wl,--build-id=none"}, LivepatchFlags: []string{"-Wl,--build-id=none"}})
	exe := filepath.Join(fx.Dir, "prog")
	testenv.CompileC(t, exe, []string{"-Wl,--build-id"}, packertest.Source(t, t.TempDir(), "probe.c"))
	for name, body := range map[string]string{"text.so": "not an elf\n", "garbage.json": "{]"} {
		if err := os.WriteFile(filepath.Join(fx.Dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, dsc, want string
	}{
		{"livepatch missing", "missing.so\n@libtarget.so.1\nfoo:foo_lp\n", "1:1: error: livepatch: stat"},
		{"livepatch not elf", "text.so\n@libtarget.so.1\nfoo:foo_lp\n", "1:1: error: livepatch " + fx.Dir + "/text.so is not an ELF file"},
		{"livepatch is a folder", ".\n@libtarget.so.1\nfoo:foo_lp\n", "is not a regular file"},
		{"livepatch not shared", "prog\n@libtarget.so.1\nfoo:foo_lp\n", "is a EM_X86_64 PIE executable file, want an x86-64 shared object"},
		{"livepatch no build-id", noBuildID.Livepatch + "\n@libtarget.so.1\nfoo:foo_lp\n", "has no GNU build-id"},
		{"target missing", "livepatch.so\n@nope.so\nfoo:foo_lp\n", "2:1: error: target: open"},
		{"target bad json", "livepatch.so\n@garbage.json\nfoo:foo_lp\n", "2:1: error: target: " + fx.Dir + "/garbage.json: invalid extract dump"},
		{"target no build-id", "livepatch.so\n@" + noBuildID.Target + "\nfoo:foo_lp\n", "2:1: error: target " + noBuildID.Target + " has no GNU build-id"},
		{"old missing", "livepatch.so\n@libtarget.so.1\nnothere:foo_lp\n", `3:1: error: old function: symbol not found: no func "nothere" in libtarget.so.1`},
		{"old is data", "livepatch.so\n@libtarget.so.1\ncounter:foo_lp\n", `3:1: error: old function: symbol not found: "counter" in libtarget.so.1 is of type object`},
		{"old offset wrong", "livepatch.so\n@libtarget.so.1\nfoo:foo_lp:1\n", `no func "foo" at offset 0x1`},
		{"old without pad, too short", "livepatch.so\n@libtarget.so.1\ntiny:foo_lp\n", `3:1: error: old function "tiny" at`},
		{"old is an ifunc", "livepatch.so\n@libtarget.so.1\nifn:foo_lp\n", `3:1: error: old function: "ifn" in libtarget.so.1 is an IFUNC: the process calls the implementation`},
		{"new missing", "livepatch.so\n@libtarget.so.1\nfoo:nothere\n", `3:5: error: new function: symbol not found: no func "nothere" in livepatch.so`},
		{"ref target missing", "livepatch.so\n@libtarget.so.1\nfoo:foo_lp\n#nothere:counter_ref\n", `4:2: error: target variable: symbol not found`},
		{"ref tls not tls", "livepatch.so\n@libtarget.so.1\nfoo:foo_lp\n#%counter:tlsvar_idx\n", `4:3: error: target variable: symbol not found: "counter" in libtarget.so.1 is of type object, want tls`},
		{"ref patch missing", "livepatch.so\n@libtarget.so.1\nfoo:foo_lp\n#counter:nothere\n", `4:10: error: patch reference: symbol not found`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, err := os.ReadFile(fx.Livepatch)
			if err != nil {
				t.Fatal(err)
			}
			d, err := dsc.ParseFile(fx.WriteDsc(t, "e.dsc", tt.dsc))
			files := packertest.ListDir(t, fx.Dir)
			if err != nil {
				t.Fatal(err)
			}
			res, err := Pack(d, Options{})
			var de *dsc.Error
			if res != nil || !errors.As(err, &de) {
				t.Fatalf("Pack = %v, %v; want a *dsc.Error", res, err)
			}
			if !strings.Contains(err.Error(), "e.dsc:"+tt.want) && !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q\nwant it to contain %q", err, tt.want)
			}
			after, err := os.ReadFile(fx.Livepatch)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, after) {
				t.Error("the livepatch changed")
			}
			if got := packertest.ListDir(t, fx.Dir); !slices.Equal(got, files) {
				t.Errorf("folder changed: %v -> %v", files, got)
			}
		})
	}
}

// TestPack_WriteErrors checks that a failed write leaves the livepatch as
// it was and no temporary file anywhere.
func TestPack_WriteErrors(t *testing.T) {
	fx := packertest.Build(t, packertest.Options{})
	d, err := dsc.ParseFile(fx.WriteDsc(t, "w.dsc", "livepatch.so\n@libtarget.so.1\nfoo:foo_lp\n"))
	if err != nil {
		t.Fatal(err)
	}
	readOnly := filepath.Join(fx.Dir, "ro")
	if err := os.Mkdir(readOnly, 0o755); err != nil {
		t.Fatal(err)
	}
	packertest.MakeReadOnly(t, readOnly)
	dirAsOut := filepath.Join(fx.Dir, "adir")
	if err := os.Mkdir(dirAsOut, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dirAsOut, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, out, want string }{
		{"read-only folder", filepath.Join(readOnly, "out.so"), "create temporary file"},
		{"missing folder", filepath.Join(fx.Dir, "nope", "out.so"), "create temporary file"},
		{"rename onto a folder", dirAsOut, "rename"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, err := os.ReadFile(fx.Livepatch)
			if err != nil {
				t.Fatal(err)
			}
			files := packertest.ListDir(t, fx.Dir)
			res, err := Pack(d, Options{Out: tt.out})
			var de *dsc.Error
			if res != nil || err == nil || errors.As(err, &de) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Pack = %v, %v; want a write error containing %q", res, err, tt.want)
			}
			after, _ := os.ReadFile(fx.Livepatch)
			if !bytes.Equal(before, after) {
				t.Error("the livepatch changed")
			}
			if got := packertest.ListDir(t, fx.Dir); !slices.Equal(got, files) {
				t.Errorf("folder changed: %v -> %v", files, got)
			}
			for _, dir := range []string{readOnly, dirAsOut} {
				if got := packertest.ListDir(t, dir); len(got) > 1 || (dir == readOnly && len(got) > 0) {
					t.Errorf("%s holds %v", dir, got)
				}
			}
		})
	}
}
