package recipe

import (
	"slices"
	"strings"
	"testing"
)

func TestSplitShell(t *testing.T) {
	for _, tc := range []struct {
		line string
		want []string // nil: refused
	}{
		{`gcc -c -o x.o ../x.c`, []string{"gcc", "-c", "-o", "x.o", "../x.c"}},
		{`gcc  -DOPENSSLDIR="\"/usr/lib/ssl\"" -c a.c`, []string{"gcc", `-DOPENSSLDIR="/usr/lib/ssl"`, "-c", "a.c"}},
		{`cc '-DX=a b' -DY=\"q\" x.c`, []string{"cc", "-DX=a b", `-DY="q"`, "x.c"}},
		{"cc\t-O2 \"\" x.c", []string{"cc", "-O2", "", "x.c"}},
		{`cc -DV=a#b x.c`, []string{"cc", "-DV=a#b", "x.c"}},
		{`cc $(CFLAGS) x.c`, nil},
		{`cc -DX="$HOME" x.c`, nil},
		{"cc `id` x.c", nil},
		{`cc x.c; rm -rf /`, nil},
		{`cc x.c > out`, nil},
		{`cc x.c && true`, nil},
		{`cc *.c`, nil},
		{`cc "unterminated`, nil},
		{`cc 'unterminated`, nil},
		{`# comment`, nil},
		{`   `, nil},
	} {
		got, err := splitShell(tc.line)
		if tc.want == nil {
			if err == nil {
				t.Errorf("splitShell(%q) = %q, want a refusal", tc.line, got)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("splitShell(%q) = %q, %v; want %q", tc.line, got, err, tc.want)
		}
	}
}

func TestStripOutput(t *testing.T) {
	got := StripOutput(strings.Fields("gcc -I. -MMD -MF a.d.tmp -MT a.o -MQ b -MP -MD -MFx.d -c -o a.o -oother.o ../a.c"))
	want := strings.Fields("gcc -I. -c ../a.c")
	if !slices.Equal(got, want) {
		t.Errorf("StripOutput = %q, want %q", got, want)
	}
}

func TestCompileLine(t *testing.T) {
	out := []byte("perl mkinfo\ngcc -I. \\\n -c -o crypto/a.o ../crypto/a.c\ntouch crypto/a.d.tmp\n")
	got, err := compileLine(out, "crypto/a.o")
	if err != nil || !slices.Equal(got, []string{"gcc", "-I.", "-c", "../crypto/a.c"}) {
		t.Errorf("compileLine = %q, %v", got, err)
	}
	if _, err := compileLine(out, "crypto/b.o"); err == nil {
		t.Error("compileLine found a command for an object make does not build")
	}
}

func TestMakeRules(t *testing.T) {
	mk := []byte("# c\nCC=gcc\nlibx.so.3: a/libx-shlib-a.o \\\n    p/libd.a\n\t$(CC) -o $@\np/libd.a: p/libd-lib-b.o\na/libx-shlib-a.o: ../a/a.c include/h.h\n%.o: %.c\nX := y:z\n")
	rules := makeRules(mk)
	for target, want := range map[string][]string{
		"libx.so.3":        {"a/libx-shlib-a.o", "p/libd.a"},
		"p/libd.a":         {"p/libd-lib-b.o"},
		"a/libx-shlib-a.o": {"../a/a.c", "include/h.h"},
	} {
		if !slices.Equal(rules[target], want) {
			t.Errorf("rules[%s] = %q, want %q", target, rules[target], want)
		}
	}
	for _, not := range []string{"%.o", "X", "CC"} {
		if _, ok := rules[not]; ok {
			t.Errorf("rules has %q", not)
		}
	}
}

// FuzzSplitShell: make's output comes from the source tree's Makefile.
func FuzzSplitShell(f *testing.F) {
	f.Add(`gcc -DA="\"x\"" 'b c' d\ e -c ../x.c`)
	f.Add(`cc "$x" ; y`)
	f.Fuzz(func(t *testing.T, line string) {
		words, err := splitShell(line)
		if err == nil && len(words) == 0 {
			t.Fatal("no words and no error")
		}
	})
}

// FuzzMakeRules: the Makefile is the source tree's.
func FuzzMakeRules(f *testing.F) {
	f.Add([]byte("a.so.3: x.o \\\n y.a\nx.o: ../x.c\n\tcc\n"))
	f.Fuzz(func(t *testing.T, mk []byte) {
		for target := range makeRules(mk) {
			if target == "" || strings.ContainsAny(target, " \t\n") {
				t.Fatalf("target %q", target)
			}
		}
	})
}
