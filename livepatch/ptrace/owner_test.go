package ptrace

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"ulp/internal/testenv"
)

// TestOnlyPtraceCallsPtrace walks every package of the module (go list) and
// fails if the code of any package other than this one calls ptrace(2) or
// wait4(2) through golang.org/x/sys/unix or syscall: a second caller would
// issue requests from a thread that is not the tracer. Test files are not
// part of the agent and are not checked.
func TestOnlyPtraceCallsPtrace(t *testing.T) {
	// go test puts the go command that runs it first on PATH.
	cmd := exec.Command("go", "list", "-json=ImportPath,Dir,GoFiles", "./...")
	cmd.Dir = testenv.ModuleRoot()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	const self = "ulp/livepatch/ptrace"
	checked := 0
	for dec.More() {
		var pkg struct {
			ImportPath, Dir                    string
			GoFiles, TestGoFiles, XTestGoFiles []string
		}
		if err := dec.Decode(&pkg); err != nil {
			t.Fatal(err)
		}
		checked++
		if pkg.ImportPath == self {
			continue
		}
		for _, f := range pkg.GoFiles {
			path := filepath.Join(pkg.Dir, f)
			for _, use := range ptraceUses(t, path) {
				t.Errorf("%s: %s: only %s may call ptrace/wait4", pkg.ImportPath, use, self)
			}
		}
	}
	if checked < 2 {
		t.Fatalf("go list found %d packages", checked)
	}
}

// ptraceUses returns the positions of ptrace and wait4 uses in one file.
func ptraceUses(t *testing.T, path string) []string {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	names := map[string]bool{} // local names of unix and syscall
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		if p != "golang.org/x/sys/unix" && p != "syscall" {
			continue
		}
		name := filepath.Base(p)
		if imp.Name != nil {
			name = imp.Name.Name
		}
		names[name] = true
	}
	var uses []string
	ast.Inspect(f, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		id, ok := sel.X.(*ast.Ident)
		if !ok || !names[id.Name] {
			return true
		}
		s := sel.Sel.Name
		if strings.HasPrefix(s, "Ptrace") || s == "Wait4" || s == "SYS_PTRACE" || s == "SYS_WAIT4" || s == "SYS_WAITID" || s == "Waitid" {
			uses = append(uses, fset.Position(sel.Pos()).String()+" "+id.Name+"."+s)
		}
		return true
	})
	return uses
}

func TestPtraceUses_FindsCalls(t *testing.T) {
	dir := t.TempDir()
	src := "package x\nimport u \"golang.org/x/sys/unix\"\nfunc f() { u.PtraceDetach(1); u.Wait4(1, nil, 0, nil) }\n"
	path := filepath.Join(dir, "x.go")
	if err := writeFile(path, src); err != nil {
		t.Fatal(err)
	}
	if got := ptraceUses(t, path); len(got) != 2 {
		t.Fatalf("ptraceUses = %v, want 2 uses", got)
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o644) }
