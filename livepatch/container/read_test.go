package container_test

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"ulp/internal/testenv"
	"ulp/livepatch/container"
	"ulp/livepatch/dsc"
	"ulp/livepatch/elfedit"
	"ulp/livepatch/packer"
	"ulp/livepatch/packer/packertest"
)

var update = flag.Bool("update", false, "rebuild testdata/sample.so with cc and the packer")

const sampleDsc = `! sample container for the fuzz seeds, CVE-2024-2961
livepatch.so
@libtarget.so.1
foo:foo_lp
#counter:counter_ref
#%tlsvar:tlsvar_idx
`

// TestSampleContainer checks the committed sample container (the FuzzRead
// seed); with -update it rebuilds it from the packertest fixtures. After a
// rebuild, update ExampleOpen and the dump goldens too:
// go test ./livepatch/cli -run TestDumpCommand_Golden -update-dump.
func TestSampleContainer(t *testing.T) {
	if *update {
		fx := packertest.Build(t, packertest.Options{
			LivepatchFlags: []string{"-Os", "-s", "-Wl,-z,noseparate-code", "-Wl,-z,max-page-size=4096"},
		})
		d, err := dsc.ParseFile(fx.WriteDsc(t, "s.dsc", sampleDsc))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := packer.Pack(d, packer.Options{Out: "testdata/sample.so"}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := container.Open("testdata/sample.so")
	if err != nil {
		t.Fatal(err)
	}
	a := c.Apply
	if a.Target.Name != "libtarget.so.1" || len(a.Funcs) != 1 || a.Funcs[0].New != "foo_lp" ||
		len(a.Refs) != 2 || !a.Refs[1].TLS || !reflect.DeepEqual(a.Labels, []string{"CVE-2024-2961"}) || len(c.BuildID) != 20 {
		t.Errorf("sample container: %+v, build-id %x", a, c.BuildID)
	}
}

func TestRead_Errors(t *testing.T) {
	sample, err := os.ReadFile("testdata/sample.so")
	if err != nil {
		t.Fatal(err)
	}
	rename := func(from, to string) []byte {
		b := bytes.Clone(sample)
		i := bytes.LastIndex(b, []byte("\x00"+from+"\x00"))
		if i < 0 {
			t.Fatalf("no section name %s", from)
		}
		copy(b[i+1:], to)
		return b
	}
	corrupt := func() []byte {
		b := bytes.Clone(sample)
		i := bytes.Index(b, []byte(container.Magic))
		for i >= 0 {
			// flip the version of every payload
			b[i+4] = 9
			j := bytes.Index(b[i+1:], []byte(container.Magic))
			if j < 0 {
				break
			}
			i += j + 1
		}
		return b
	}
	tests := []struct {
		name string
		data []byte
		is   error
		msg  string
	}{
		{"empty", nil, nil, "not an ELF file"},
		{"text", []byte("hello world"), nil, "not an ELF file"},
		{"truncated", sample[:len(sample)/2], nil, ""},
		{"no .ulp", rename(".ulp", ".xyz"), container.ErrNotContainer, "no .ulp section"},
		{"no .ulp.rev", rename(".ulp.rev", ".ulp.xyz"), container.ErrNotContainer, "no .ulp.rev section"},
		{"bad payload", corrupt(), nil, "unsupported version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := container.Read(bytes.NewReader(tt.data))
			if c != nil || err == nil {
				t.Fatalf("Read = %v, %v; want an error", c, err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("err = %v, want %q", err, tt.msg)
			}
		})
	}
	if _, err := container.Open(filepath.Join(t.TempDir(), "nope.so")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open(missing) = %v", err)
	}
}

func TestRead_MismatchedSections(t *testing.T) {
	sample, err := os.ReadFile("testdata/sample.so")
	if err != nil {
		t.Fatal(err)
	}
	c, err := container.Read(bytes.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		revert func(*container.Spec)
		apply  *container.Spec
		msg    string
	}{
		{"id", func(s *container.Spec) { s.ID[0] ^= 1 }, nil, "patch id differs"},
		{"target", func(s *container.Spec) { s.Target.Name = "other.so" }, nil, "target differs"},
		{"target quoted", func(s *container.Spec) { s.Target.Name = "x\nulp: fake" }, nil, `target differs from .ulp '"x\nulp: fake"'`}, // one line
		{"kind", nil, c.Revert, "wrong kind"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rev := *c.Revert
			if tt.revert != nil {
				tt.revert(&rev)
			}
			apply := c.Apply
			if tt.apply != nil {
				apply = tt.apply
			}
			ad, err := container.Marshal(apply)
			if err != nil {
				t.Fatal(err)
			}
			rd, err := container.Marshal(&rev)
			if err != nil {
				t.Fatal(err)
			}
			b, err := elfedit.AddSections(sample, []elfedit.Section{{Name: container.SectionApply, Data: ad}, {Name: container.SectionRevert, Data: rd}})
			if err != nil {
				t.Fatal(err)
			}
			if got, err := container.Read(bytes.NewReader(b)); got != nil || err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Read = %v, %v; want %q", got, err, tt.msg)
			}
		})
	}
}

func FuzzRead(f *testing.F) {
	testenv.AddSeedFiles(f, "testdata/*.so")
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := container.Read(bytes.NewReader(data))
		if err != nil {
			if c != nil {
				t.Fatal("non-nil File with an error")
			}
			return
		}
		if c.Apply == nil || c.Revert == nil || c.Apply.ID != c.Revert.ID || len(c.BuildID) == 0 {
			t.Fatalf("inconsistent container accepted: %+v", c)
		}
		for _, s := range []*container.Spec{c.Apply, c.Revert} {
			if _, err := container.Marshal(s); err != nil {
				t.Fatalf("accepted spec does not marshal: %v", err)
			}
		}
	})
}

func BenchmarkRead(b *testing.B) {
	data, err := os.ReadFile("testdata/sample.so")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := container.Read(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}
