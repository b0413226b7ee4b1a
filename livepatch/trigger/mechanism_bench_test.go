package trigger

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"ulp/internal/testenv"
	"ulp/livepatch/report"
	"ulp/livepatch/trigger/triggertest"
)

// costFixture is testdata/callcost.c linked with libcost built with the pad
// (cost_pad) and without it (cost_entry), and one container for each.
type costFixture struct {
	bin, pad, entry string
}

func buildCost(b *testing.B) *costFixture {
	b.Helper()
	testenv.Require(b, testenv.CC)
	fx := &triggertest.Fixture{Dir: b.TempDir(), LP: map[string]string{}}
	src := func(name string) string {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			b.Fatal(err)
		}
		p := filepath.Join(fx.Dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			b.Fatal(err)
		}
		return p
	}
	lib := src("libcost.c")
	libPad := filepath.Join(fx.Dir, "libcostpad.so")
	testenv.CompileC(b, libPad, append([]string{"-shared", "-fPIC", "-DCOST=cost_pad"}, triggertest.Patchable...), lib)
	libEntry := filepath.Join(fx.Dir, "libcostentry.so")
	testenv.CompileC(b, libEntry, []string{"-shared", "-fPIC", "-O2", "-Wl,--build-id", "-DCOST=cost_entry"}, lib)
	c := &costFixture{bin: filepath.Join(fx.Dir, "callcost")}
	testenv.CompileC(b, c.bin, []string{"-O2", "-Wl,-rpath," + fx.Dir}, src("callcost.c"), libPad, libEntry)
	lp := src("lp_cost.c")
	pack := func(name, target, line string) string {
		so := filepath.Join(fx.Dir, name+".so")
		testenv.CompileC(b, so, []string{"-shared", "-fPIC", "-O2", "-Wl,--build-id"}, lp)
		return fx.PackFile(b, so, target, line)
	}
	c.pad = pack("lp_pad", libPad, "cost_pad:cost_lp")
	c.entry = pack("lp_entry", libEntry, "cost_entry:cost_lp")
	return c
}

// BenchmarkMechanisms reports the cost of one call through the PLT of a
// plain function, of a padded function redirected by the pad mechanism
// (entry jmp rel8 back into the pad, then jmp *slot), and of an unpadded
// one redirected by the entry mechanism (jmp rel32), all doing the same
// work; and the median pause and total time of an apply and a revert of
// each mechanism on the same, idle, process.
func BenchmarkMechanisms(b *testing.B) {
	c := buildCost(b)
	p := triggertest.Start(b, nil, c.bin)
	const calls = 20_000_000
	cost := func(name string) float64 {
		v, err := strconv.ParseFloat(p.Ask(b, "time "+name+" "+strconv.Itoa(calls)), 64)
		if err != nil {
			b.Fatal(err)
		}
		return v
	}
	run := func(req Request) report.Process {
		rep := Run(b.Context(), p.PID, req, Options{Retries: 100, Timeout: 30 * time.Second})
		if rep.Result != report.Success {
			b.Fatalf("%s %s: %s %s", req.Action, filepath.Base(req.Container), rep.Result, rep.Reason)
		}
		return rep
	}
	var plain, pad, entry []float64
	var padPause, entryPause, padTotal, entryTotal []float64
	for b.Loop() {
		plain = append(plain, cost("pad"), cost("entry"))
		rp := run(apply(c.pad))
		re := run(apply(c.entry))
		if got := p.Ask(b, "check"); got != "5 5" {
			b.Fatalf("patched check = %q", got)
		}
		pad = append(pad, cost("pad"))
		entry = append(entry, cost("entry"))
		padPause = append(padPause, float64(rp.Timings.PauseUS))
		entryPause = append(entryPause, float64(re.Timings.PauseUS))
		padTotal = append(padTotal, float64(rp.Timings.TotalUS))
		entryTotal = append(entryTotal, float64(re.Timings.TotalUS))
		rp = run(revert(c.pad))
		re = run(revert(c.entry))
		padPause = append(padPause, float64(rp.Timings.PauseUS))
		entryPause = append(entryPause, float64(re.Timings.PauseUS))
		if got := p.Ask(b, "check"); got != "4 4" {
			b.Fatalf("reverted check = %q", got)
		}
	}
	med := func(v []float64) float64 {
		slices.Sort(v)
		return v[len(v)/2]
	}
	b.ReportMetric(med(plain), "plain-ns/call")
	b.ReportMetric(med(pad), "pad-ns/call")
	b.ReportMetric(med(entry), "entry-ns/call")
	b.ReportMetric(med(padPause), "pad-pause-µs")
	b.ReportMetric(med(entryPause), "entry-pause-µs")
	b.ReportMetric(med(padTotal), "pad-apply-total-µs")
	b.ReportMetric(med(entryTotal), "entry-apply-total-µs")
}
