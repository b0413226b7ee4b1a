package udiff

import (
	"errors"
	"slices"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		header  string
		files   []string
		changed []Range // of the first file
		err     bool
	}{
		{
			name: "debian patch with DEP-3 header",
			in: "Description: fix it\nBug: CVE-2099-0001\n---\n" +
				"--- a/crypto/x.c\t2024-01-01 00:00:00\n+++ b/crypto/x.c\n@@ -10,4 +10,5 @@ int f(void)\n ctx\n-old\n+new\n+more\n ctx\n ctx\n",
			header:  "Description: fix it\nBug: CVE-2099-0001\n---",
			files:   []string{"crypto/x.c"},
			changed: []Range{{11, 11}, {12, 12}, {10, 11}},
		},
		{
			name: "git diff, two files, no newline at end",
			in: "diff --git a/a.c b/a.c\nindex 1..2 100644\n--- a/a.c\n+++ b/a.c\n@@ -1 +1 @@\n-x\n\\ No newline at end of file\n+y\n\\ No newline at end of file\n" +
				"--- a/b/c.c\n+++ b/b/c.c\n@@ -5,3 +5,2 @@\n a\n-b\n c\n",
			header:  "diff --git a/a.c b/a.c\nindex 1..2 100644",
			files:   []string{"a.c", "b/c.c"},
			changed: []Range{{1, 1}, {1, 1}},
		},
		{name: "pure deletion", in: "--- a/f.c\n+++ b/f.c\n@@ -3,1 +2,0 @@\n-gone\n", files: []string{"f.c"}, changed: []Range{{2, 3}}},
		{name: "new file", in: "--- /dev/null\n+++ b/n.c\n@@ -0,0 +1 @@\n+x\n", files: []string{"n.c"}, changed: []Range{{1, 1}}},
		{name: "no files", in: "just text\n", err: true},
		{name: "leaves the tree", in: "--- a/../x.c\n+++ b/../x.c\n@@ -1 +1 @@\n-a\n+b\n", err: true},
		{name: "absolute after strip", in: "--- a//etc/x\n+++ b//etc/x\n@@ -1 +1 @@\n-a\n+b\n", err: true},
		{name: "truncated hunk", in: "--- a/f.c\n+++ b/f.c\n@@ -1,3 +1,3 @@\n a\n", err: true},
		{name: "bad header", in: "--- a/f.c\n+++ b/f.c\n@@ -x +1 @@\n", err: true},
		{name: "binary", in: "--- a/f.c\n+++ b/f.c\n@@ -1 +1 @@\n-a\n+b\nBinary files a/g and b/g differ\n", err: true},
		{name: "both null", in: "--- /dev/null\n+++ /dev/null\n@@ -1 +1 @@\n-a\n+b\n", err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse([]byte(tc.in))
			if tc.err {
				if !errors.Is(err, ErrFormat) {
					t.Fatalf("err = %v, want ErrFormat", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var files []string
			for _, f := range p.Files {
				files = append(files, f.Path())
			}
			if p.Header != tc.header || !slices.Equal(files, tc.files) {
				t.Fatalf("header %q files %v, want %q %v", p.Header, files, tc.header, tc.files)
			}
			if got := p.Files[0].Changed(); !slices.Equal(got, tc.changed) {
				t.Fatalf("changed %v, want %v", got, tc.changed)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("--- a/f.c\n+++ b/f.c\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n"))
	f.Add([]byte("hdr\n--- /dev/null\n+++ b/n.c\n@@ -0,0 +1 @@\n+x\n\\ No newline\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v not tagged ErrFormat", err)
			}
			return
		}
		for _, file := range p.Files {
			path := file.Path()
			if path == "" || path[0] == '/' || path == ".." || len(path) > 2 && path[:3] == "../" {
				t.Fatalf("path %q leaves the tree", path)
			}
			for _, r := range file.Changed() {
				if r.Lo > r.Hi || r.Lo < 0 {
					t.Fatalf("range %v", r)
				}
			}
		}
	})
}
