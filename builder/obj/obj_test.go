package obj

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"ulp/internal/testenv"
)

// compile compiles C source src the way ulp build does and reads it.
func compile(t testing.TB, src string) (*Object, []byte) {
	t.Helper()
	dir := t.TempDir()
	c := filepath.Join(dir, "x.c")
	if err := os.WriteFile(c, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	o := filepath.Join(dir, "x.o")
	testenv.CompileC(t, o, []string{"-c", "-O2", "-fPIC", "-ffunction-sections", "-fdata-sections"}, c)
	data, err := os.ReadFile(o)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := Read(data)
	if err != nil {
		t.Fatal(err)
	}
	return obj, data
}

const base = `
int ext(const char *);
static int counter = 1;
static const int table[4] = {1, 2, 3, 4};
const char *name(int i) { return i ? "one" : "zero"; }
int use(int i) { counter += table[i & 3]; return ext("hello") + counter; }
int other(void) { return ext("other"); }
`

func TestDiff(t *testing.T) {
	before, _ := compile(t, base)
	for _, tc := range []struct {
		name    string
		src     string
		changed []string
		new     []string
		refused string
	}{
		{"same", base, nil, nil, ""},
		// Moving string literals around changes their offsets, not the
		// functions that use them.
		{"strings reordered", strings.Replace(base, "const char *name", "const char *unused(void) { return \"first\"; }\nconst char *name", 1), nil, []string{"unused"}, ""},
		{"string changed", strings.Replace(base, `"other"`, `"0ther"`, 1), []string{"other"}, nil, ""},
		{"constant table changed", strings.Replace(base, "{1, 2, 3, 4}", "{1, 2, 3, 5}", 1), []string{"use"}, nil, ""},
		{"code changed", strings.Replace(base, "i & 3", "i & 1", 1), []string{"use"}, nil, ""},
		{"variable resized", strings.Replace(base, "static int counter = 1;", "static long counter = 1;", 1), []string{"use"}, nil, "changed data layout of counter (4 -> 8 bytes)"},
		{"initial value", strings.Replace(base, "counter = 1", "counter = 2", 1), nil, nil, "changed initial value of counter"},
		{"new variable", base + "static int extra; int more(void) { return ++extra; }", nil, []string{"more"}, "new static variable extra"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			after, _ := compile(t, tc.src)
			d := Diff(before, after)
			if !slices.Equal(d.Changed, tc.changed) || !slices.Equal(d.New, tc.new) {
				t.Fatalf("changed %v new %v, want %v %v", d.Changed, d.New, tc.changed, tc.new)
			}
			switch {
			case tc.refused == "" && len(d.Refused) > 0:
				t.Fatalf("refused: %v", errors.Join(d.Refused...))
			case tc.refused != "" && (len(d.Refused) == 0 || !strings.Contains(errors.Join(d.Refused...).Error(), tc.refused)):
				t.Fatalf("refused %v, want %q", d.Refused, tc.refused)
			}
		})
	}
}

func TestRead_Relocs(t *testing.T) {
	o, _ := compile(t, base)
	use := o.Func("use")
	if use == nil || !use.Global {
		t.Fatalf("no global function use in %v", o.Funcs)
	}
	var ids []string
	for _, r := range use.Relocs {
		ids = append(ids, r.ID)
	}
	for _, want := range []string{"var:counter", "ext:ext"} {
		if !slices.Contains(ids, want) {
			t.Errorf("use refers to %v, want %s among them", ids, want)
		}
	}
	if d := o.Datum("counter"); d == nil || !d.Writable || d.Size != 4 || d.Global {
		t.Errorf("counter: %+v", d)
	}
	if d := o.Datum("table"); d == nil || d.Writable {
		t.Errorf("table: %+v", d)
	}
}

func FuzzRead(f *testing.F) {
	if testenv.Required(testenv.CC) || hasCC() {
		_, data := compile(f, base)
		f.Add(data)
	}
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := Read(data)
		if err != nil {
			return
		}
		for _, fn := range o.Funcs {
			for _, r := range fn.Relocs {
				if r.Off < 0 || r.Off+r.Size() > len(fn.Code) {
					t.Fatalf("relocation %+v outside %s", r, fn.Name)
				}
			}
			Masked(fn.Code, fn.Relocs)
		}
		Diff(o, o)
	})
}

func hasCC() bool {
	_, err := os.Stat("/usr/bin/cc")
	return err == nil
}

func TestChangedLayouts(t *testing.T) {
	layouts := func(src string) map[string]string {
		t.Helper()
		dir := t.TempDir()
		c := filepath.Join(dir, "x.c")
		if err := os.WriteFile(c, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		o := filepath.Join(dir, "x.o")
		testenv.CompileC(t, o, []string{"-c", "-O2", "-g", "-fPIC"}, c)
		data, err := os.ReadFile(o)
		if err != nil {
			t.Fatal(err)
		}
		l, err := Layouts(data)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	const src = "struct node { int a; int b; }; typedef struct { char c; } anon_t;\nint f(struct node *n, anon_t *x) { return n->b + x->c; }\n"
	before := layouts(src)
	if before["struct node"] == "" || before["typedef anon_t"] == "" {
		t.Fatalf("layouts %v", before)
	}
	for _, tc := range []struct {
		name, src, want string
	}{
		{"same", src, ""},
		{"code only", strings.Replace(src, "n->b + x->c", "n->b - x->c", 1), ""},
		{"field added", strings.Replace(src, "int a; int b;", "int a; int pad; int b;", 1), "changed layout of struct node (8 bytes: a@0/4 b@4/4 -> 12 bytes: a@0/4 pad@4/4 b@8/4)"},
		{"typedef struct", strings.Replace(src, "char c;", "long c;", 1), "changed layout of typedef anon_t"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := ChangedLayouts(before, layouts(tc.src))
			got := errors.Join(errs...)
			switch {
			case tc.want == "" && got != nil:
				t.Fatal(got)
			case tc.want != "" && (got == nil || !strings.Contains(got.Error(), tc.want)):
				t.Fatalf("got %v, want %q", got, tc.want)
			}
		})
	}
}
