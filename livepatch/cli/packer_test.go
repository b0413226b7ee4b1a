package cli

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"ulp/internal/testenv"
	"ulp/livepatch/container"
	"ulp/livepatch/packer/packertest"
	"ulp/livepatch/report"
)

// runBuildCommand runs `ulp args...` in process and returns its stdout,
// stderr and exit status.
func runBuildCommand(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), args, &stdout, &stderr)
	return stdout.String(), stderr.String(), code
}

func mustSym(t *testing.T, path, name string) uint64 {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, _ := f.Symbols()
	for _, s := range syms {
		if s.Name == name && s.Section != elf.SHN_UNDEF {
			return s.Value
		}
	}
	t.Fatalf("%s: no symbol %s", path, name)
	return 0
}

const cliDsc = `! CVE-2024-2961: fix foo
livepatch.so
@libtarget.so.1
foo:foo_lp
helper:helper_lp
#counter:counter_ref
#%tlsvar:tlsvar_idx
`

func TestBuildCommands_EndToEnd(t *testing.T) {
	fx := packertest.Build(t, packertest.Options{CFProtection: true})
	probe := packertest.Probe(t, fx.Dir)
	dscPath := fx.WriteDsc(t, "p.dsc", cliDsc)

	out, stderr, code := runBuildCommand(t, "packer", dscPath)
	if code != 0 || !strings.HasPrefix(out, "packed "+fx.Livepatch+": patch ") {
		t.Fatalf("packer: %d\n%s%s", code, out, stderr)
	}
	if b, err := exec.Command("readelf", "-SW", fx.Livepatch).Output(); err != nil ||
		!strings.Contains(string(b), " .ulp ") || !strings.Contains(string(b), " .ulp.rev ") {
		t.Errorf("readelf -S: %v\n%s", err, b)
	}
	if got, err := packertest.Call(t, probe, fx.Livepatch, "foo_lp", "1"); err != nil || got != "1001" {
		t.Errorf("dlopen packed container: %q, %v", got, err)
	}

	// Re-packing with -v logs each function on stderr.
	if _, stderr, code := runBuildCommand(t, "-v", "packer", dscPath); code != 0 || !strings.Contains(stderr, "level=DEBUG msg=function old=foo old_offset=0x") {
		t.Errorf("packer -v: %d %q", code, stderr)
	}

	// dump --json carries every field of the container.
	out, stderr, code = runBuildCommand(t, "dump", "--json", fx.Livepatch)
	if code != 0 {
		t.Fatalf("dump --json: %d %s", code, stderr)
	}
	var d dumpJSON
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatal(err)
	}
	c, err := container.Open(fx.Livepatch)
	if err != nil {
		t.Fatal(err)
	}
	want := dumpJSON{
		Schema: DumpSchema, Container: fx.Livepatch, ContainerBuildID: hex.EncodeToString(c.BuildID),
		Section: ".ulp", Format: "ulp", Kind: "apply", PatchID: c.Apply.ID.String(),
		Target: dumpTarget{Name: "libtarget.so.1", BuildID: hex.EncodeToString(c.Apply.Target.BuildID)},
		Functions: []dumpFunction{
			{"foo", "foo_lp", mustSym(t, fx.Target, "foo"), mustSym(t, fx.Livepatch, "foo_lp"), "pad", 4},
			{"helper", "helper_lp", mustSym(t, fx.Target, "helper"), mustSym(t, fx.Livepatch, "helper_lp"), "pad", 4},
		},
		References: []dumpReference{
			{"counter", "counter_ref", mustSym(t, fx.Target, "counter"), mustSym(t, fx.Livepatch, "counter_ref"), false},
			{"tlsvar", "tlsvar_idx", mustSym(t, fx.Target, "tlsvar"), mustSym(t, fx.Livepatch, "tlsvar_idx"), true},
		},
		Comments: "CVE-2024-2961: fix foo",
		Labels:   []string{"CVE-2024-2961"},
	}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("dump --json:\n got %+v\nwant %+v", d, want)
	}
	if len(c.Apply.Target.BuildID) != 20 || c.Apply.ID == (container.ID{}) {
		t.Errorf("build-id %x, id %v", c.Apply.Target.BuildID, c.Apply.ID)
	}

	out, _, code = runBuildCommand(t, "dump", fx.Livepatch)
	for _, s := range []string{
		"patch id:           " + c.Apply.ID.String(),
		"target:             libtarget.so.1",
		"target build-id:    " + hex.EncodeToString(c.Apply.Target.BuildID),
		"functions:          2",
		"  foo -> foo_lp  old 0x",
		"pad entry+4",
		"  tlsvar -> tlsvar_idx  target 0x0  patch 0x",
		"labels:             CVE-2024-2961",
		"comments:\n  CVE-2024-2961: fix foo\n",
	} {
		if code != 0 || !strings.Contains(out, s) {
			t.Errorf("dump output lacks %q:\n%s", s, out)
		}
	}
	out, _, code = runBuildCommand(t, "dump", "--revert", "--json", fx.Livepatch)
	var rd dumpJSON
	if err := json.Unmarshal([]byte(out), &rd); code != 0 || err != nil {
		t.Fatalf("dump --revert: %d %v", code, err)
	}
	if rd.Kind != "revert" || rd.Section != ".ulp.rev" || rd.PatchID != d.PatchID || rd.Target != d.Target || len(rd.Functions) != 0 {
		t.Errorf("dump --revert: %+v", rd)
	}

	// extract, then pack against the dump: the same metadata.
	jsonPath := filepath.Join(fx.Dir, "target.json")
	if _, stderr, code := runBuildCommand(t, "extract", fx.Target, "-o", jsonPath); code != 0 {
		t.Fatalf("extract: %d %s", code, stderr)
	}
	stdoutJSON, _, code := runBuildCommand(t, "extract", fx.Target)
	if file, _ := os.ReadFile(jsonPath); code != 0 || string(file) != stdoutJSON || !strings.Contains(stdoutJSON, `"schema": "ulp.extract/v1"`) {
		t.Errorf("extract to stdout differs from -o")
	}
	fromJSON := filepath.Join(fx.Dir, "from-json.so")
	jdsc := fx.WriteDsc(t, "j.dsc", strings.Replace(cliDsc, "@libtarget.so.1", "@target.json", 1))
	if out, stderr, code := runBuildCommand(t, "-q", "packer", jdsc, "-o", fromJSON); code != 0 || out != "" {
		t.Fatalf("packer -q against JSON: %d %q %s", code, out, stderr)
	}
	out, _, _ = runBuildCommand(t, "dump", "--json", fromJSON)
	var jd dumpJSON
	if err := json.Unmarshal([]byte(out), &jd); err != nil {
		t.Fatal(err)
	}
	jd.Container = d.Container
	if !reflect.DeepEqual(jd, d) {
		t.Errorf("packing against the extract dump differs:\n json %+v\n  elf %+v", jd, d)
	}

	// livepatchable and post.
	out, _, code = runBuildCommand(t, "livepatchable", fx.Target)
	if code != 0 || !strings.Contains(out, "is livepatchable: ") || !strings.Contains(out, "functions have the entry pad") {
		t.Errorf("livepatchable target: %d %q", code, out)
	}
	out, _, code = runBuildCommand(t, "livepatchable", jsonPath)
	if code != 0 || !strings.Contains(out, "is livepatchable") {
		t.Errorf("livepatchable json: %d %q", code, out)
	}
	// The livepatch has no pad, but functions long enough for the entry jump.
	out, _, code = runBuildCommand(t, "livepatchable", fx.Livepatch)
	if code != 0 || !strings.Contains(out, " 0 of ") || !strings.Contains(out, "(mechanism: entry)") {
		t.Errorf("livepatchable livepatch: %d %q", code, out)
	}
	out, _, code = runBuildCommand(t, "post", fx.Target)
	if code != 0 || !strings.Contains(out, "already merged") || strings.Contains(out, "merged 0 ") {
		t.Errorf("post: %d %q", code, out)
	}
	out, _, code = runBuildCommand(t, "post", fx.Target)
	if code != 0 || !strings.Contains(out, "merged 0 entries") {
		t.Errorf("second post: %d %q", code, out)
	}
	_, stderr, code = runBuildCommand(t, "post", fx.Livepatch)
	if code != report.ExitFailure || !strings.Contains(stderr, "no function carries the patchable entry pad") {
		t.Errorf("post on the livepatch: %d %q", code, stderr)
	}
}

func TestPackerCommand_Errors(t *testing.T) {
	fx := packertest.Build(t, packertest.Options{})
	counter, counterRef, foo := mustSym(t, fx.Target, "counter"), mustSym(t, fx.Livepatch, "counter_ref"), mustSym(t, fx.Target, "foo")
	dump, _, code := runBuildCommand(t, "extract", fx.Target)
	if code != 0 {
		t.Fatal("extract failed")
	}
	dumpPath := filepath.Join(fx.Dir, "target.json")
	if err := os.WriteFile(dumpPath, []byte(dump), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		dsc  string
		args []string
		code int
		want []string
	}{
		{"syntax", "livepatch.so\n@libtarget.so.1\nfoo:foo_lp:zz\n#x\n", nil, report.ExitUsage, []string{
			"e.dsc:3:12: error: old function offset \"zz\" is not a hex number\nfoo:foo_lp:zz\n           ^\n",
			"e.dsc:4:1: error: expected '#target_var:patch_ref'",
		}},
		{"unresolved", "livepatch.so\n@libtarget.so.1\nfoo:nothere\ntiny:foo_lp\n", nil, report.ExitUsage, []string{
			"e.dsc:3:5: error: new function: symbol not found: no func \"nothere\" in livepatch.so\nfoo:nothere\n    ^\n",
			"e.dsc:4:1: error: old function \"tiny\"",
		}},
		// Offsets given by hand are checked against the files, as the
		// agent checks them before it writes.
		{"patch offset not the named symbol", fmt.Sprintf("livepatch.so\n@libtarget.so.1\nfoo:foo_lp\n#counter:counter_ref:%x:%x\n", counter, counterRef+8), nil, report.ExitUsage, []string{
			fmt.Sprintf("e.dsc:4:10: error: patch reference: symbol not found: no object \"counter_ref\" at offset %#x in livepatch.so", counterRef+8),
		}},
		{"target offset outside every segment", fmt.Sprintf("livepatch.so\n@libtarget.so.1\nfoo:foo_lp\n#counter:counter_ref:7fffff00:%x\n", counterRef), nil, report.ExitUsage, []string{
			"e.dsc:4:2: error: bad offset: reference counter_ref: the target variable counter at 0x7fffff00 is not in a segment of libtarget.so.1",
		}},
		{"extract dump: target offset outside every segment", fmt.Sprintf("livepatch.so\n@%s\nfoo:foo_lp\n#counter:counter_ref:7fffff00:%x\n", dumpPath, counterRef), nil, report.ExitUsage, []string{
			"error: bad offset: reference counter_ref: the target variable counter at 0x7fffff00 is not in a segment of libtarget.so.1",
		}},
		{"duplicated replacement", "livepatch.so\n@libtarget.so.1\nfoo:foo_lp\nfoo:foo_lp\n", nil, report.ExitUsage, []string{
			"e.dsc:4:1: error: function \"foo\" replaced twice (first on line 3)",
		}},
		{"old offset not the named symbol", fmt.Sprintf("livepatch.so\n@libtarget.so.1\nfoo:foo_lp:%x\n", foo+1), nil, report.ExitUsage, []string{
			fmt.Sprintf("e.dsc:3:1: error: old function: symbol not found: no func \"foo\" at offset %#x in libtarget.so.1", foo+1),
		}},
		{"write error", "livepatch.so\n@libtarget.so.1\nfoo:foo_lp\n", []string{"-o", "/nonexistent/dir/x.so"}, report.ExitFailure, []string{
			"ulp: write container /nonexistent/dir/x.so: create temporary file",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := fx.WriteDsc(t, "e.dsc", tt.dsc)
			before, _ := os.ReadFile(fx.Livepatch)
			files := packertest.ListDir(t, fx.Dir)
			out, stderr, code := runBuildCommand(t, append([]string{"packer", p}, tt.args...)...)
			if code != tt.code || out != "" {
				t.Errorf("exit %d, want %d; stdout %q", code, tt.code, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			after, _ := os.ReadFile(fx.Livepatch)
			if !bytes.Equal(before, after) || !slices.Equal(files, packertest.ListDir(t, fx.Dir)) {
				t.Error("something was written")
			}
		})
	}
}

func TestBuildCommands_Usage(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "text")
	if err := os.WriteFile(text, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"packer"}, report.ExitUsage, "accepts 1 arg(s), received 0"},
		{[]string{"packer", "a", "b"}, report.ExitUsage, "accepts 1 arg(s), received 2"},
		{[]string{"packer", filepath.Join(dir, "missing.dsc")}, report.ExitUsage, "no such file"},
		{[]string{"packer", "--bogus", "x"}, report.ExitUsage, "unknown flag"},
		{[]string{"dump"}, report.ExitUsage, "accepts 1 arg(s)"},
		{[]string{"dump", filepath.Join(dir, "missing.so")}, report.ExitUsage, "no such file"},
		{[]string{"dump", text}, report.ExitUsage, "not an ELF file"},
		{[]string{"dump", "/proc/self/exe"}, report.ExitUsage, "not a livepatch container: no .ulp section"},
		{[]string{"livepatchable", filepath.Join(dir, "missing")}, report.ExitUsage, "no such file"},
		{[]string{"livepatchable", text}, report.ExitUsage, "invalid extract dump"},
		{[]string{"extract", text}, report.ExitUsage, "invalid extract dump"},
		{[]string{"extract", "/proc/self/exe", "-d", text}, report.ExitUsage, "debuginfo"},
		{[]string{"extract", "/proc/self/exe", "-o", filepath.Join(dir, "no", "x.json")}, report.ExitFailure, "create temporary file"},
		{[]string{"post"}, report.ExitUsage, "accepts 1 arg(s)"},
		{[]string{"post", text}, report.ExitUsage, "invalid input"},
		{[]string{"post", filepath.Join(dir, "missing")}, report.ExitUsage, "no such file"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, stderr, code := runBuildCommand(t, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.want) || out != "" {
				t.Errorf("exit %d (want %d), stdout %q, stderr %q (want %q)", code, tt.code, out, stderr, tt.want)
			}
		})
	}
	if got := packertest.ListDir(t, dir); !slices.Equal(got, []string{"text"}) {
		t.Errorf("folder holds %v", got)
	}
}

// TestUlpBinary_PackDumpPost drives the static build/ulp itself.
func TestUlpBinary_PackDumpPost(t *testing.T) {
	ulp := testenv.Artifact(t, "ulp")
	fx := packertest.Build(t, packertest.Options{})
	run := func(args ...string) (string, int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, ulp, args...).CombinedOutput()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("ulp %v: %v", args, err)
		}
		code := 0
		if ee != nil {
			code = ee.ExitCode()
		}
		return string(out), code
	}
	if out, code := run("packer", fx.WriteDsc(t, "b.dsc", cliDsc)); code != 0 {
		t.Fatalf("packer: %d %s", code, out)
	}
	out, code := run("dump", "--json", fx.Livepatch)
	var d dumpJSON
	if err := json.Unmarshal([]byte(out), &d); code != 0 || err != nil || len(d.Functions) != 2 || d.Labels[0] != "CVE-2024-2961" {
		t.Errorf("dump: %d %v %s", code, err, out)
	}
	if out, code := run("packer", fx.WriteDsc(t, "bad.dsc", "livepatch.so\n@libtarget.so.1\nfoo\n")); code != report.ExitUsage || !strings.Contains(out, "bad.dsc:3:1: error: ") {
		t.Errorf("bad description: %d %s", code, out)
	}
	if out, code := run("livepatchable", fx.Livepatch); code != 0 || !strings.Contains(out, "(mechanism: entry)") {
		t.Errorf("livepatchable livepatch: %d %s", code, out)
	}
	if out, code := run("post", fx.Target); code != 0 || !strings.Contains(out, "merged") {
		t.Errorf("post: %d %s", code, out)
	}
}

// TestPackerCommand_ForgedText: the lines of a .dsc and the names in the
// files it names (here an extract dump whose library name holds a newline)
// are printed escaped in packer's errors, so that they can neither start a
// forged line nor drive the terminal.
func TestPackerCommand_ForgedText(t *testing.T) {
	fx := packertest.Build(t, packertest.Options{})
	dump, _, code := runBuildCommand(t, "extract", fx.Target)
	if code != 0 {
		t.Fatal("extract failed")
	}
	var d map[string]any
	if err := json.Unmarshal([]byte(dump), &d); err != nil {
		t.Fatal(err)
	}
	d["name"] = "libtarget.so.1\nPID 1 (init): SUCCESS\x1b]0;owned\a"
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	dumpPath := filepath.Join(fx.Dir, "target.json")
	if err := os.WriteFile(dumpPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, dsc string
		want      []string // in stderr, escaped
	}{
		{"syntax", "livepatch.so\n@libtarget.so.1\nfoo\x1b]0;owned\a:foo_lp:zz\nbar\rPID 1 (init): SUCCESS:foo_lp\n", []string{
			`foo\x1b]0;owned\a:foo_lp:zz` + "\n" + strings.Repeat(" ", 25) + "^\n",
			`bar\rPID 1 (init): SUCCESS:foo_lp` + "\n" + strings.Repeat(" ", 3) + "^\n",
		}},
		{"names in the target", "livepatch.so\n@target.json\nnothere:foo_lp\n", []string{
			`no func "nothere" in libtarget.so.1\nPID 1 (init): SUCCESS\x1b]0;owned\a` + "\n",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, stderr, code := runBuildCommand(t, "packer", fx.WriteDsc(t, "e.dsc", tt.dsc))
			if code != report.ExitUsage || out != "" {
				t.Errorf("exit %d, want %d; stdout %q", code, report.ExitUsage, out)
			}
			for _, l := range strings.Split(stderr, "\n") {
				if strings.HasPrefix(l, "PID") || strings.ContainsAny(l, "\x1b\a\r") {
					t.Errorf("forged line %q in\n%s", l, stderr)
				}
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
}
