package testenv

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// TestInternalLibrariesImportNoOtherPackage walks the packages under
// internal/ (go list) and fails if a library or test harness there imports a
// ulp package outside internal/: the packages the whole tree shares must not
// depend on what depends on them. The programs under internal/tools are
// leaves like cmd/ and may import anything.
func TestInternalLibrariesImportNoOtherPackage(t *testing.T) {
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports", "./internal/...")
	cmd.Dir = ModuleRoot()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	libs := 0
	for dec.More() {
		var pkg struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&pkg); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(pkg.ImportPath, "ulp/internal/tools/") {
			continue
		}
		libs++
		for _, imp := range pkg.Imports {
			if strings.HasPrefix(imp, "ulp/") && !strings.HasPrefix(imp, "ulp/internal/") {
				t.Errorf("%s imports %s", pkg.ImportPath, imp)
			}
		}
	}
	if libs < 3 {
		t.Fatalf("go list found %d library packages under internal/", libs)
	}
}
