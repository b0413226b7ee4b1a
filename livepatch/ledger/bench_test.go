package ledger

import "testing"

// stackedLedger applies n patches of 4 functions each over 64 functions.
func stackedLedger(b *testing.B, n int) (*Ledger, *fakeMem) {
	mem := newCode(64, true)
	l := &Ledger{}
	for i := 1; i <= n; i++ {
		fns := []int{i % 64, (i * 7) % 64, (i*13 + 1) % 64, (i*29 + 2) % 64}
		slicesCompact(&fns)
		plan, err := Apply(l, testPatch(mem, i, "libx.so", fns...), mem)
		if err != nil {
			b.Fatal(err)
		}
		mem.write(b, plan.Writes)
		l = plan.Ledger
	}
	return l, mem
}

func slicesCompact(fns *[]int) {
	seen := map[int]bool{}
	out := (*fns)[:0]
	for _, f := range *fns {
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	*fns = out
}

func BenchmarkApply(b *testing.B) {
	l, mem := stackedLedger(b, 50)
	p := testPatch(mem, 200, "libx.so", 3, 5, 8)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Apply(l, p, mem); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeDecode(b *testing.B) {
	l, _ := stackedLedger(b, 50)
	enc, err := Encode(l)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		enc, err := Encode(l)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(enc)), "ledger-bytes")
}
