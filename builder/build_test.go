package builder_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"ulp/builder"
	"ulp/builder/recipe"
	"ulp/internal/testenv"
	"ulp/livepatch/container"
	"ulp/livepatch/trigger/triggertest"
)

// syn is the synthetic library of testdata/syn built at test time: its
// sources with a compile_commands.json, the stripped library and a program
// linked with it.
type syn struct {
	dir, src, lib, app string
}

// buildSyn compiles libsyn.so.1 from testdata/syn with opt (e.g. -O2), while
// compile_commands.json always says -O2, and strips it.
func buildSyn(t *testing.T, opt string) *syn {
	t.Helper()
	testenv.Require(t, testenv.CC)
	dir := t.TempDir()
	s := &syn{dir: dir, src: filepath.Join(dir, "src"), lib: filepath.Join(dir, "libsyn.so.1"), app: filepath.Join(dir, "app")}
	if err := os.MkdirAll(s.src, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"a.c", "b.c"} {
		b, err := os.ReadFile(filepath.Join("testdata", "syn", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(s.src, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// One entry in each form of compile_commands.json.
	cmds := []map[string]any{
		{"directory": s.src, "file": "a.c", "arguments": []string{"gcc", "-O2", "-g", "-fPIC", "-Wall", "-c", "a.c", "-o", "a.o", "-MD", "-MF", "a.d"}},
		{"directory": s.src, "file": filepath.Join(s.src, "b.c"), "command": "gcc -O2 -g -fPIC -c b.c -o b.o"},
	}
	b, err := json.Marshal(cmds)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.src, "compile_commands.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, s.src, "gcc", opt, "-g", "-fPIC", "-c", "a.c", "-o", filepath.Join(dir, "a.o"))
	run(t, s.src, "gcc", opt, "-g", "-fPIC", "-c", "b.c", "-o", filepath.Join(dir, "b.o"))
	full := s.lib + ".full"
	run(t, dir, "gcc", "-shared", "-Wl,-soname,libsyn.so.1", "-Wl,--build-id", "-o", full, "a.o", "b.o")
	run(t, dir, "strip", "--strip-all", "-o", s.lib, full)
	run(t, dir, "gcc", "-O2", "-o", s.app, filepath.Join(testenv.ModuleRoot(), "builder", "testdata", "syn", "app.c"), s.lib, "-Wl,-rpath,"+dir)
	return s
}

func run(t *testing.T, dir, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func (s *syn) build(t *testing.T, patch string) (*builder.Result, string, error) {
	t.Helper()
	r, err := recipe.FromCompileCommands(filepath.Join(s.src, "compile_commands.json"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(s.dir, strings.TrimSuffix(patch, ".patch")+".so")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := builder.Build(ctx, builder.Options{
		Target: s.lib, Recipe: r, Patch: filepath.Join("testdata", "syn", patch), Out: out,
		Log: triggertest.Logger(t),
	})
	return res, out, err
}

func ulp(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(testenv.Artifact(t, "ulp"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ulp %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestBuild_AppliesToRunningProcess builds each fix against the stripped
// library, applies it to a process that runs it, and reverts it.
func TestBuild_AppliesToRunningProcess(t *testing.T) {
	testenv.Require(t, testenv.Build, testenv.Ptrace)
	s := buildSyn(t, "-O2")
	for _, tc := range []struct {
		patch    string
		replaced []string // functions the container replaces
		refs     []string // library symbols it references
		label    string
		query    string
		before   string
		after    string
	}{
		// An exported function.
		{patch: "fix_exported.patch", replaced: []string{"lib_value"}, label: "CVE-2099-1001", query: "value 3", before: "103", after: "203"},
		// A static function of the stripped library (found by its code),
		// observed through its exported caller.
		{patch: "fix_static.patch", replaced: []string{"check_len"}, label: "CVE-2099-1002", query: "short 9", before: "1027", after: "999"},
		// New code reads a static variable, calls an unchanged static
		// function and reads a hidden variable of the other file (whose GOT
		// load ld relaxed to a lea in the library): all located through
		// the matched functions.
		{patch: "fix_ref.patch", replaced: []string{"lib_mix"}, refs: []string{"calls", "scale", "syn_hidden"}, label: "CVE-2099-1003", query: "mix 2", before: "15", after: "3022"},
		// A static function with a twin of the same code (but for the
		// variable it reads) in the library: its place among the located
		// functions of its section, or the variable, tells them apart.
		// Two files, each with a static check_len: each is replaced by its
		// own (the patch names the second check_len.ulp1).
		{patch: "fix_two_files.patch", replaced: []string{"check_len", "check_len"}, label: "CVE-2099-1005", query: "olen 18", before: "36", after: "-2"},
		{patch: "fix_twin.patch", replaced: []string{"get_b"}, refs: []string{"vb"}, label: "CVE-2099-1004", query: "ab 0", before: "22", after: "23"},
	} {
		t.Run(tc.patch, func(t *testing.T) {
			res, out, err := s.build(t, tc.patch)
			if err != nil {
				t.Fatal(err)
			}
			var got, refs []string
			for _, f := range res.Spec.Funcs {
				got = append(got, f.Old)
			}
			for _, r := range res.Spec.Refs {
				refs = append(refs, r.TargetVar)
			}
			if strings.Join(got, ",") != strings.Join(tc.replaced, ",") || strings.Join(refs, ",") != strings.Join(tc.refs, ",") {
				t.Fatalf("replaces %v with references %v, want %v and %v", got, refs, tc.replaced, tc.refs)
			}
			if dump := ulp(t, "dump", out); !strings.Contains(dump, tc.label) || !strings.Contains(dump, tc.replaced[0]+" -> ") {
				t.Fatalf("ulp dump lacks %s or the function:\n%s", tc.label, dump)
			}
			p := triggertest.Start(t, []string{"LD_LIBRARY_PATH=" + s.dir}, s.app)
			if tc.patch == "fix_ref.patch" {
				// calls counts lib_parse's successful calls.
				for range 3 {
					p.Ask(t, "parse abc")
				}
			}
			if got := p.Ask(t, tc.query); got != tc.before {
				t.Fatalf("before: %s = %s, want %s", tc.query, got, tc.before)
			}
			if o := ulp(t, "trigger", "-p", strconv.Itoa(p.PID), out); !strings.Contains(o, "SUCCESS") {
				t.Fatalf("trigger: %s", o)
			}
			if got := p.Ask(t, tc.query); got != tc.after {
				t.Fatalf("applied: %s = %s, want %s", tc.query, got, tc.after)
			}
			if o := ulp(t, "trigger", "-p", strconv.Itoa(p.PID), "--revert", out); !strings.Contains(o, "SUCCESS") {
				t.Fatalf("revert: %s", o)
			}
			if got := p.Ask(t, tc.query); got != tc.before {
				t.Fatalf("reverted: %s = %s, want %s", tc.query, got, tc.before)
			}
			p.Untraced(t)
		})
	}
}

// TestBuild_Refuses checks that fixes that cannot be live patched safely
// are refused with their reason and write nothing.
func TestBuild_Refuses(t *testing.T) {
	o2 := buildSyn(t, "-O2")
	o1 := buildSyn(t, "-O1")
	for _, tc := range []struct {
		name, patch string
		lib         *syn
		want        string
	}{
		{"changed struct layout", "refuse_struct.patch", o2, "changed layout of struct node (8 bytes: a@0/4 b@4/4 -> 12 bytes: a@0/4 pad@4/4 b@8/4)"},
		{"changed macro", "refuse_macro.patch", o2, "scale changed although the patch changes none of its lines"},
		{"new static variable", "refuse_newvar.patch", o2, "new static variable value_calls"},
		// The library's other functions using it do not stand in the way of
		// the other fixes; this one keeps such code.
		{"thread-local variable", "refuse_tls.patch", o2, "thread-local access tls_calls@tlsld(%rip)"},
		// A constant table the patch keeps holds the address of a variable
		// that must stay the library's.
		{"data pointing at a library variable", "refuse_dataptr.patch", o2, "data the patch keeps points at variable calls"},
		// The packer's check of the entry mechanism, said without a
		// description's file position.
		{"too short for the jump", "refuse_short.patch", o2, "refused: old function \"lib_node_b\" at 0x"},
		{"mismatched flags", "fix_static.patch", o1, "changed function check_len is not in libsyn.so.1: check_len: no function of the library has its code"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, out, err := tc.lib.build(t, tc.patch)
			if !errors.Is(err, builder.ErrRefused) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a refusal with %q", err, tc.want)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("%s written despite the refusal (%v)", out, err)
			}
		})
	}
}

// TestBuildCommand_ExitStatus runs `ulp build`: a container is an ordinary
// one (ulp dump reads it), a refusal exits 2 with the reason.
func TestBuildCommand_ExitStatus(t *testing.T) {
	testenv.Require(t, testenv.Build)
	s := buildSyn(t, "-O2")
	out := filepath.Join(s.dir, "cli.so")
	args := []string{"build", "--target", s.lib, "--compile-commands", filepath.Join(s.src, "compile_commands.json"), "-o", out, "-m", "bsc#1234567"}
	o := ulp(t, append(args, "--patch", filepath.Join("testdata", "syn", "fix_static.patch"))...)
	if !strings.Contains(o, "check_len (a.c) at 0x") {
		t.Fatalf("ulp build printed:\n%s", o)
	}
	spec, err := container.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(spec.Apply.Labels, ",") != "bsc#1234567,CVE-2099-1002" {
		t.Fatalf("labels %v", spec.Apply.Labels)
	}
	cmd := exec.Command(testenv.Artifact(t, "ulp"), append(args, "--patch", filepath.Join("testdata", "syn", "refuse_newvar.patch"))...)
	b, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(b), "new static variable value_calls") {
		t.Fatalf("refusal: %v\n%s", err, b)
	}
}
