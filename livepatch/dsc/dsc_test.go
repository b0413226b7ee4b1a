package dsc

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"ulp/internal/testenv"
)

func TestParse_Full(t *testing.T) {
	d, err := ParseFile("testdata/full.dsc")
	if err != nil {
		t.Fatal(err)
	}
	want := &Desc{
		File:         "testdata/full.dsc",
		Livepatch:    "testdata/libfoo_livepatch.so",
		LivepatchPos: Pos{2, 1},
		Target:       "/usr/lib/libfoo.so.1",
		TargetPos:    Pos{3, 1},
		Funcs: []Func{
			{Old: "foo", New: "foo_lp", Pos: Pos{5, 1}, NewPos: Pos{5, 5}},
			{Old: "_ZL4normPd", New: "_Z8norm3_lpPd", OldOffset: 0x40122e, HasOldOffset: true, Pos: Pos{6, 1}, NewPos: Pos{6, 12}},
		},
		Refs: []Ref{
			{TargetVar: "counter", PatchRef: "counter_ref", Pos: Pos{7, 2}, RefPos: Pos{7, 10}},
			{TargetVar: "counter2", PatchRef: "counter2_ref", TargetOffset: 0x4010, PatchOffset: 0x3ff0, HasOffsets: true, Pos: Pos{8, 2}, RefPos: Pos{8, 11}},
			{TargetVar: "tlsvar", PatchRef: "tlsvar_idx", TLS: true, Pos: Pos{9, 3}, RefPos: Pos{9, 10}},
		},
		Comments: []string{"Fixes CVE-2024-2961 (bsc#1200316), jsc#SLE-20049", "second comment"},
	}
	d.lines = nil
	if !reflect.DeepEqual(d, want) {
		t.Errorf("got  %+v\nwant %+v", d, want)
	}
	if got := want.CommentText(); got != "Fixes CVE-2024-2961 (bsc#1200316), jsc#SLE-20049\nsecond comment" {
		t.Errorf("CommentText = %q", got)
	}
}

func TestParse_CRLFAndIndent(t *testing.T) {
	d, err := ParseFile("testdata/crlf.dsc")
	if err != nil {
		t.Fatal(err)
	}
	if d.Target != "testdata/t.json" || len(d.Funcs) != 1 || d.Funcs[0].Old != "a" || d.Funcs[0].Pos != (Pos{3, 3}) {
		t.Errorf("got %+v", d)
	}
}

func TestParse_Errors(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string // each error, in order
	}{
		{"empty", "", []string{"x.dsc:1:1: error: no livepatch path"}},
		{"only comments", "! hello\n\n", []string{"x.dsc:3:1: error: no livepatch path"}},
		{"target first", "@lib.so\n", []string{"x.dsc:1:1: error: expected the livepatch path first"}},
		{"no target", "lp.so\na:b\n", []string{"x.dsc:1:1: error: no target"}},
		{"no funcs", "lp.so\n@t.so\n", []string{"x.dsc:1:1: error: no function to replace"}},
		{"two targets", "lp.so\n@a\n@b\na:b\n", []string{"x.dsc:3:1: error: second target: a patch applies to exactly one object (first target on line 2)"}},
		{"empty target", "lp.so\n@ \na:b\n", []string{"x.dsc:2:2: error: empty target path"}},
		{"dependency", "lp.so\n@t\n*old.ulp\na:b\n", []string{"x.dsc:3:1: error: dependency lines ('*') are not supported"}},
		{"one field", "lp.so\n@t\nfoo\n", []string{`x.dsc:3:1: error: expected 'old:new' or 'old:new:old_offset', found "foo"`}},
		{"four fields", "lp.so\n@t\na:b:c:d\n", []string{"x.dsc:3:1: error: expected 'old:new'"}},
		{"empty old", "lp.so\n@t\n:b\n", []string{"x.dsc:3:1: error: empty old function name"}},
		{"empty new", "lp.so\n@t\n  a:\n", []string{"x.dsc:3:5: error: empty new function name"}},
		{"space", "lp.so\n@t\na b:c\n", []string{`x.dsc:3:2: error: space in old function name "a b"`}},
		{"bad offset", "lp.so\n@t\na:b:xyz\n", []string{`x.dsc:3:5: error: old function offset "xyz" is not a hex number`}},
		{"huge offset", "lp.so\n@t\na:b:10000000000000000\n", []string{"x.dsc:3:5: error: old function offset"}},
		{"dup", "lp.so\n@t\na:b\na:c\n", []string{`x.dsc:4:1: error: function "a" replaced twice (first on line 3)`}},
		{"ref fields", "lp.so\n@t\na:b\n#x\n", []string{"x.dsc:4:1: error: expected '#target_var:patch_ref'"}},
		{"ref three", "lp.so\n@t\na:b\n#x:y:1\n", []string{"x.dsc:4:1: error: expected '#target_var:patch_ref'"}},
		{"ref bad off", "lp.so\n@t\na:b\n#%x:y:1:q\n", []string{`x.dsc:4:9: error: patch offset "q" is not a hex number`}},
		{"ref bad target off", "lp.so\n@t\na:b\n#x:y::1\n", []string{`x.dsc:4:6: error: target offset "" is not a hex number`}},
		{"ref empty", "lp.so\n@t\na:b\n#:y\n", []string{"x.dsc:4:2: error: empty target variable name"}},
		{"ref empty patch", "lp.so\n@t\na:b\n#%x:\n", []string{"x.dsc:4:5: error: empty patch reference name"}},
		{"nul", "lp.so\n@t\na\x00:b\n", []string{"x.dsc:3:2: error: NUL byte in line"}},
		{"utf8", "lp.so\n@t\n\xff:b\n", []string{"x.dsc:3:1: error: line is not valid UTF-8"}},
		{"long name", "lp.so\n@t\n" + strings.Repeat("a", 4097) + ":b\n", []string{"x.dsc:3:1: error: old function name longer than 4096 bytes"}},
		{"too large", strings.Repeat("!\n", MaxSize), []string{"x.dsc:1:1: error: description larger than"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Parse("x.dsc", []byte(tt.in))
			if d != nil || err == nil {
				t.Fatalf("Parse = %v, %v; want an error", d, err)
			}
			var all []error
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				all = j.Unwrap()
			} else {
				all = []error{err}
			}
			if len(all) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(all), len(tt.want), err)
			}
			for i, e := range all {
				var de *Error
				if !errors.As(e, &de) {
					t.Errorf("error %d is %T, want *Error", i, e)
				}
				if !strings.Contains(e.Error(), tt.want[i]) {
					t.Errorf("error %d = %q, want it to contain %q", i, e, tt.want[i])
				}
			}
		})
	}
}

func TestParse_ByteOrderMark(t *testing.T) {
	d, err := Parse("x.dsc", []byte("\ufefflp.so\n@t\na:b\n"))
	if err != nil || d.Livepatch != "lp.so" {
		t.Fatalf("Parse = %+v, %v", d, err)
	}
}

func TestError_Caret(t *testing.T) {
	_, err := Parse("x.dsc", []byte("lp.so\n@t\n\ta:b:zz\n"))
	var de *Error
	if !errors.As(err, &de) {
		t.Fatalf("got %v", err)
	}
	if got, want := de.Caret(), `\ta:b:zz`+"\n      ^"; got != want {
		t.Errorf("Caret = %q, want %q", got, want)
	}
}

// TestError_CaretEscapes: the source line is the description's text, so
// its control characters and bytes that are not UTF-8 are escaped, and the
// caret stands under the escaped column.
func TestError_CaretEscapes(t *testing.T) {
	for _, tt := range []struct{ line, want string }{
		{"a\x1b]0;owned\ab:c:zz", `a\x1b]0;owned\ab:c:zz` + "\n" + strings.Repeat(" ", 19) + "^"}, // under zz
		{"a\x1b[2K\rb:c", `a\x1b[2K\rb:c` + "\n" + strings.Repeat(" ", 8) + "^"},                  // under \r, a space in a name
		{"\xff\xfe:b", `\xff\xfe:b` + "\n^"},
	} {
		_, err := Parse("x.dsc", []byte("lp.so\n@t\n"+tt.line+"\n"))
		var de *Error
		if !errors.As(err, &de) {
			t.Fatalf("%q: got %v", tt.line, err)
		}
		if got := de.Caret(); got != tt.want {
			t.Errorf("%q: Caret = %q, want %q", tt.line, got, tt.want)
		}
	}
}

func TestParseFile_Missing(t *testing.T) {
	_, err := ParseFile(filepath.Join(t.TempDir(), "nope.dsc"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("got %v, want ErrNotExist", err)
	}
}

func FuzzParse(f *testing.F) {
	testenv.AddSeedFiles(f, "testdata/*.dsc")
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse("f.dsc", data)
		if err != nil {
			if d != nil {
				t.Fatal("non-nil Desc with an error")
			}
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				var de *Error
				if !errors.As(e, &de) {
					t.Fatalf("error %T is not *Error", e)
				}
				_ = de.Caret()
			}
			return
		}
		if d.Livepatch == "" || d.Target == "" || len(d.Funcs) == 0 {
			t.Fatalf("accepted an incomplete description: %+v", d)
		}
	})
}

func TestErrorf_Unwraps(t *testing.T) {
	d := &Desc{File: "p.dsc", lines: []string{"@lib.so"}}
	err := d.Errorf(Pos{Line: 1, Col: 2}, "target: %w", fs.ErrNotExist)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is(%v, fs.ErrNotExist) = false", err)
	}
	if want := "p.dsc:1:2: error: target: file does not exist"; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
	if plain := d.Errorf(Pos{Line: 1}, "no cause %d", 1); plain.Unwrap() != nil {
		t.Errorf("Unwrap of a message without %%w = %v, want nil", plain.Unwrap())
	}
}
