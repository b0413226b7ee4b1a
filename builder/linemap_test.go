package builder

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"ulp/builder/udiff"
	"ulp/internal/testenv"
)

func TestRenumber(t *testing.T) {
	for _, tc := range []struct {
		name          string
		before, after string
		want          string // the rewritten after file
		changed       []udiff.Range
	}{
		{"insertion", "a\nb\nc\n", "a\nX\nY\nb\nc\n", "a\n#line 2\nX\nY\n#line 2\nb\nc\n", []udiff.Range{{Lo: 2, Hi: 3}}},
		{"replacement", "a\nb\nc\nd\n", "a\nX\nY\nZ\nd\n", "a\n#line 2\nX\nY\nZ\n#line 4\nd\n", []udiff.Range{{Lo: 2, Hi: 4}, {Lo: 1, Hi: 4}}},
		{"deletion", "a\nb\nc\nd\n", "a\nd\n", "a\n#line 4\nd\n", []udiff.Range{{Lo: 1, Hi: 4}}},
		{"two hunks", "1\n2\n3\n4\n5\n6\n", "1\nA\n2\n3\n4\n6\n", "1\n#line 2\nA\n#line 2\n2\n3\n4\n#line 6\n6\n", []udiff.Range{{Lo: 2, Hi: 2}, {Lo: 4, Hi: 6}}},
		{"macro continuation", "#define M \\\n  1\nb\n", "#define M \\\n  2\nb\n", "#define M \\\n  2\n#line 3\nb\n", []udiff.Range{{Lo: 2, Hi: 2}, {Lo: 1, Hi: 3}}},
		{"at the start", "a\nb\n", "X\na\nb\n", "X\n#line 1\na\nb\n", []udiff.Range{{Lo: 1, Hi: 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			before, after := filepath.Join(dir, "before.c"), filepath.Join(dir, "after.c")
			os.WriteFile(before, []byte(tc.before), 0o644)
			os.WriteFile(after, []byte(tc.after), 0o644)
			changed, err := keepLineNumbers(context.Background(), before, after, "x.c")
			if err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(after)
			if string(got) != tc.want {
				t.Errorf("rewritten:\n%s\nwant:\n%s", got, tc.want)
			}
			if !slices.Equal(changed, tc.changed) {
				t.Errorf("changed = %v, want %v", changed, tc.changed)
			}
		})
	}
}

// TestKeepLineNumbers_UnchangedFunctionsCompileAlike: a fix that adds lines
// above a function using __LINE__ leaves that function's code as it was.
func TestKeepLineNumbers_UnchangedFunctionsCompileAlike(t *testing.T) {
	testenv.Require(t, testenv.CC)
	dir := t.TempDir()
	before := "int check(int x)\n{\n    return x > 1;\n}\n\nint where(void)\n{\n    return __LINE__;\n}\n"
	after := strings.Replace(before, "    return x > 1;\n", "    if (x < 0)\n        return -1;\n    return x > 1;\n", 1)
	obj := func(name, src string) []byte {
		c := filepath.Join(dir, name+".c")
		os.WriteFile(c, []byte(src), 0o644)
		if name == "after" {
			if _, err := keepLineNumbers(context.Background(), filepath.Join(dir, "before.c"), c, "x.c"); err != nil {
				t.Fatal(err)
			}
		}
		o := filepath.Join(dir, name+".o")
		if b, err := exec.Command("cc", "-O2", "-ffunction-sections", "-c", "-o", o, c).CombinedOutput(); err != nil {
			t.Fatalf("cc: %v\n%s", err, b)
		}
		b, err := exec.Command("objcopy", "-O", "binary", "--only-section=.text.where", o, "/dev/stdout").Output()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b, a := obj("before", before), obj("after", after)
	if len(b) == 0 || !bytes.Equal(a, b) {
		t.Errorf("where() compiles to % x after the fix, % x before", a, b)
	}
}
