package trigger

import (
	"debug/elf"
	"fmt"
	"testing"

	"ulp/livepatch/report"
	"ulp/livepatch/target"
	"ulp/livepatch/trigger/triggertest"
)

func TestApplyRevert(t *testing.T) {
	tests := []struct {
		name   string
		cflags []string
	}{
		{"plain", []string{"-fcf-protection=none"}},
		{"endbr64", []string{"-fcf-protection=full"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := triggertest.Build(t, tt.cflags...)
			p := triggertest.Start(t, nil, fx.App)
			p.Expect(t, map[string]string{"value": "100", "intra": "101"})
			rep := mustTrig(t, p.PID, apply(fx.LP["lp200"]), report.Success)
			if rep.PatchID == "" || rep.Comm != "app" {
				t.Errorf("report %+v", rep)
			}
			p.Untraced(t)
			// -Bsymbolic: the call inside the library is redirected too.
			p.Expect(t, map[string]string{"value": "200", "intra": "201"})
			mustTrig(t, p.PID, revert(fx.LP["lp200"]), report.Success)
			p.Untraced(t)
			p.Expect(t, map[string]string{"value": "100", "intra": "101"})
		})
	}
}

func TestStackedPatchesRevertedOutOfOrder(t *testing.T) {
	fx := triggertest.Build(t)
	p := triggertest.Start(t, nil, fx.App)
	for _, n := range []string{"lp200", "lp300", "lp400"} {
		mustTrig(t, p.PID, apply(fx.LP[n]), report.Success)
	}
	p.Expect(t, map[string]string{"value": "400"})
	steps := []struct{ revert, want string }{
		{"lp300", "400"},
		{"lp400", "200"},
		{"lp200", "100"},
	}
	for _, s := range steps {
		mustTrig(t, p.PID, revert(fx.LP[s.revert]), report.Success)
		p.Expect(t, map[string]string{"value": s.want})
	}
}

func TestAlreadyApplied(t *testing.T) {
	fx := triggertest.Build(t)
	p := triggertest.Start(t, nil, fx.App)
	mustTrig(t, p.PID, apply(fx.LP["lp200"]), report.Success)
	rep := mustTrig(t, p.PID, apply(fx.LP["lp200"]), report.Skipped)
	if rep.Reason != ReasonApplied {
		t.Errorf("reason %q", rep.Reason)
	}
	rep = mustTrig(t, p.PID, revert(fx.LP["lp300"]), report.Skipped)
	if rep.Reason != ReasonNotApplied {
		t.Errorf("reason %q", rep.Reason)
	}
	p.Expect(t, map[string]string{"value": "200"})
}

// TestStaticArgsDataTLSPage patches a static function, a function of 10 int
// and 10 float arguments, functions reading a variable and a TLS variable of
// the library through references, and a function whose prologue crosses a
// page boundary.
func TestStaticArgsDataTLSPage(t *testing.T) {
	for _, cf := range []string{"-fcf-protection=none", "-fcf-protection=full"} {
		t.Run(cf, func(t *testing.T) {
			fx := triggertest.Build(t, cf)
			checkPageCross(t, fx.Calc, "calc_page")
			p := triggertest.Start(t, nil, fx.App)
			orig := map[string]string{"hidden": "50", "args": "105", "counter": "42", "tls": "9", "page": "7"}
			p.Expect(t, orig)
			mustTrig(t, p.PID, apply(fx.LP["misc"]), report.Success)
			// 1*1+2*2+...+10*10 = 385; 10*0.5+20*1.5+...+100*9.5 = 10*385-5*55 = 3575
			p.Expect(t, map[string]string{"hidden": "60", "args": "3960", "counter": "1042", "tls": "2009", "page": "8"})
			mustTrig(t, p.PID, revert(fx.LP["misc"]), report.Success)
			p.Expect(t, orig)
		})
	}
}

// checkPageCross fails t unless the 14-byte pad of function fn in lib
// starts on one page and ends on the next.
func checkPageCross(t *testing.T, lib, fn string) {
	t.Helper()
	f, err := elf.Open(lib)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.DynamicSymbols()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range syms {
		if s.Name == fn {
			if start, end := s.Value-14, s.Value+2; start/4096 == (end-1)/4096 {
				t.Fatalf("%s at %#x: its prologue [%#x, %#x) does not cross a page", fn, s.Value, start, end)
			}
			return
		}
	}
	t.Fatalf("%s: no symbol %s", lib, fn)
}

func TestTwoLibrariesAndMainProgram(t *testing.T) {
	fx := triggertest.Build(t)
	p := triggertest.Start(t, nil, fx.App)
	mustTrig(t, p.PID, apply(fx.LP["lp200"]), report.Success)
	mustTrig(t, p.PID, apply(fx.LP["two"]), report.Success)
	mustTrig(t, p.PID, apply(fx.LP["main"]), report.Success)
	p.Expect(t, map[string]string{"value": "200", "two": "22", "main": "11"})
	mustTrig(t, p.PID, revert(fx.LP["two"]), report.Success)
	p.Expect(t, map[string]string{"value": "200", "two": "2", "main": "11"})
	mustTrig(t, p.PID, revert(fx.LP["main"]), report.Success)
	p.Expect(t, map[string]string{"value": "200", "two": "2", "main": "1"})
}

// TestLedgerGrows applies two patches with 800 bug labels each: their
// ledger no longer fits the runtime's static area, so the trigger has the
// runtime map a larger one (ULP_OP_GROW_LEDGER) first.
func TestLedgerGrows(t *testing.T) {
	fx := triggertest.Build(t)
	labels := func(base int) []string {
		l := []string{"calc_value:calc_value_lp"}
		for i := range 800 {
			l = append(l, fmt.Sprintf("! fixes CVE-2099-%d", base+i))
		}
		return l
	}
	bigA := fx.Pack(t, "bigA", "lp_value.c", []string{"-DVALUE=500"}, fx.Calc, labels(10000)...)
	bigB := fx.Pack(t, "bigB", "lp_value.c", []string{"-DVALUE=600"}, fx.Calc, labels(20000)...)
	p := triggertest.Start(t, nil, fx.App)
	tp, err := target.Open(p.PID)
	if err != nil {
		t.Fatal(err)
	}
	before, err := tp.ReadABI()
	if err != nil {
		t.Fatal(err)
	}
	mustTrig(t, p.PID, apply(bigA), report.Success)
	mustTrig(t, p.PID, apply(bigB), report.Success)
	p.Expect(t, map[string]string{"value": "600"})
	after, err := tp.ReadABI()
	if err != nil {
		t.Fatal(err)
	}
	if after.LedgerCap <= before.LedgerCap || after.Ledger == before.Ledger {
		t.Errorf("ledger area %#x cap %d -> %#x cap %d: did not grow", before.Ledger, before.LedgerCap, after.Ledger, after.LedgerCap)
	}
	l, err := tp.ReadLedger(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// The fixture's description adds CVE-2099-0001 before them.
	if len(l.Patches) != 2 || len(l.Patches[1].Labels) != 801 || l.Patches[1].Labels[1] != "CVE-2099-20000" {
		t.Fatalf("ledger: %d patches, labels %d %v", len(l.Patches), len(l.Patches[1].Labels), l.Patches[1].Labels[:3])
	}
	mustTrig(t, p.PID, revert(bigB), report.Success)
	p.Expect(t, map[string]string{"value": "500"})
	mustTrig(t, p.PID, revert(bigA), report.Success)
	p.Expect(t, map[string]string{"value": "100"})
}
