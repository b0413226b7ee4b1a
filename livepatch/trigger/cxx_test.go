package trigger

import (
	"path/filepath"
	"testing"

	"ulp/livepatch/report"
	"ulp/livepatch/trigger/triggertest"
)

// TestCXXExceptionThroughPatchedFrames: C++ exceptions thrown inside
// replacement functions unwind through the replacements' frames (and
// through the redirected entries) to a catch in the program.
func TestCXXExceptionThroughPatchedFrames(t *testing.T) {
	fx := triggertest.Build(t)
	lib := filepath.Join(fx.Dir, "libcxx.so.1")
	triggertest.CompileCXX(t, lib, append([]string{"-shared", "-fPIC", "-Wl,-soname,libcxx.so.1"}, triggertest.Patchable...), "libcxx.cc")
	app := filepath.Join(fx.Dir, "cxxapp")
	triggertest.CompileCXX(t, app, []string{"-O2", "-Wl,-rpath," + fx.Dir}, "cxxapp.cc", lib)
	lp := filepath.Join(fx.Dir, "lp_cxx.so")
	triggertest.CompileCXX(t, lp, []string{"-shared", "-fPIC", "-O2", "-Wl,--build-id"}, "lp_cxx.cc")
	lp = fx.PackFile(t, lp, lib, "cxx_inner:cxx_inner_lp", "cxx_outer:cxx_outer_lp")

	p := triggertest.Start(t, nil, app)
	p.Expect(t, map[string]string{"5": "6", "-1": "caught inner"})
	mustTrig(t, p.PID, apply(lp), report.Success)
	p.Expect(t, map[string]string{"5": "caught inner_lp", "-1": "caught inner_lp", "20": "1022"})
	mustTrig(t, p.PID, revert(lp), report.Success)
	p.Expect(t, map[string]string{"5": "6", "-1": "caught inner"})
}
