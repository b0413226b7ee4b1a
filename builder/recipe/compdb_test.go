package recipe

import (
	"context"
	"errors"
	"slices"
	"testing"
)

func TestCompileCommands(t *testing.T) {
	const root = "/src/lib"
	db := `[
	 {"directory": "/src/lib", "file": "a.c", "arguments": ["cc", "-O2", "-c", "a.c", "-o", "a.o", "-MD", "-MF", "a.d", "-MT", "a.o"]},
	 {"directory": "/src/lib/sub", "file": "/src/lib/sub/b.c", "command": "cc -O2 -DNAME=\"x y\" '-DQ=a b' -c b.c -oout/b.o -MMD -MQ b.o"},
	 {"directory": "build", "file": "../c.c", "arguments": ["cc", "-c", "../c.c"]},
	 {"directory": "/elsewhere", "file": "d.c", "arguments": ["cc", "-c", "d.c"]}
	]`
	r, err := parseCompileCommands([]byte(db), root)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file string
		dir  string
		args []string
	}{
		{"a.c", "/src/lib", []string{"cc", "-O2", "-c", "a.c"}},
		{"sub/b.c", "/src/lib/sub", []string{"cc", "-O2", "-DNAME=x y", "-DQ=a b", "-c", "b.c"}},
		{"./c.c", "/src/lib/build", []string{"cc", "-c", "../c.c"}},
	} {
		c, err := r.Command(context.Background(), tc.file)
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if c.Dir != tc.dir || !slices.Equal(c.Args, tc.args) {
			t.Errorf("%s: %s %q, want %s %q", tc.file, c.Dir, c.Args, tc.dir, tc.args)
		}
	}
	if _, err := r.Command(context.Background(), "d.c"); !errors.Is(err, ErrNoCommand) {
		t.Errorf("a file outside the tree: %v", err)
	}
	for _, bad := range []string{`{}`, `[{"file": "a.c"}]`, `[{"directory": "/", "file": "a.c"}]`, `[{"directory": "/", "file": "a.c", "command": "cc 'x"}]`} {
		if _, err := parseCompileCommands([]byte(bad), root); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func FuzzCompileCommands(f *testing.F) {
	f.Add([]byte(`[{"directory": "/r", "file": "a.c", "command": "cc -c \"a b\" a.c -o a.o"}]`))
	f.Add([]byte(`[{"directory": "/r", "file": "a.c", "arguments": ["cc", "-MF", "x", "-o"]}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := parseCompileCommands(data, "/r")
		if err != nil {
			return
		}
		for file := range r.cmds {
			c, err := r.Command(context.Background(), file)
			if err != nil {
				t.Fatal(err)
			}
			if slices.Contains(c.Args, "-o") || slices.Contains(c.Args, "-MF") || slices.Contains(c.Args, "-MD") {
				t.Fatalf("output flags kept: %q", c.Args)
			}
		}
	})
}
