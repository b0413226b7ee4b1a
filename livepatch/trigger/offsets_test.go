package trigger

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"ulp/livepatch/container"
	"ulp/livepatch/elfedit"
	"ulp/livepatch/elfsym"
	"ulp/livepatch/procfs"
	"ulp/livepatch/report"
	"ulp/livepatch/target"
	"ulp/livepatch/trigger/triggertest"
)

// craftContainer writes, under a new name, a copy of container src whose
// .ulp and .ulp.rev say what mutate makes of its spec: a container built by
// hand (or by a buggy tool) with the right build-ids and wrong offsets.
func craftContainer(t *testing.T, src, name string, mutate func(s *container.Spec)) string {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	c, err := container.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	spec := *c.Apply
	spec.Funcs, spec.Refs = slices.Clone(spec.Funcs), slices.Clone(spec.Refs)
	mutate(&spec)
	ap, err := container.Marshal(&spec)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := container.Marshal(c.Revert)
	if err != nil {
		t.Fatal(err)
	}
	out, err := elfedit.AddSections(data, []elfedit.Section{{Name: container.SectionApply, Data: ap}, {Name: container.SectionRevert, Data: rev}})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name+".so")
	if err := os.WriteFile(p, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// codeOf returns the bytes of the executable mappings of obj in pid.
func codeOf(t *testing.T, pid int, obj string) []byte {
	t.Helper()
	maps, err := procfs.Maps(pid)
	if err != nil {
		t.Fatal(err)
	}
	var all []byte
	for _, m := range maps {
		if m.Executable() && m.Base() == obj {
			b := make([]byte, m.End-m.Start)
			if err := procfs.ReadMem(pid, m.Start, b); err != nil {
				t.Fatal(err)
			}
			all = append(all, b...)
		}
	}
	if len(all) == 0 {
		t.Fatalf("%s not mapped executable in %d", obj, pid)
	}
	return all
}

// TestBadOffsets: containers whose build-ids match but whose offsets are
// wrong (the cases of issue 13: an old offset mid-instruction or on data, a
// new offset on data or 0, a reference into code, two functions one byte
// apart) are refused with the reason before anything is mapped or
// written: the process keeps running its old code, untouched, with an
// empty ledger, and a good container applies afterwards.
func TestBadOffsets(t *testing.T) {
	fx := triggertest.Build(t)
	calc, err := elfsym.Open(fx.Calc)
	if err != nil {
		t.Fatal(err)
	}
	counter, err := calc.Lookup("counter", elfsym.TypeObject)
	if err != nil {
		t.Fatal(err)
	}
	lp200, misc := fx.LP["lp200"], fx.LP["misc"]
	tests := []struct {
		name   string
		src    string
		mutate func(s *container.Spec)
		want   string
	}{
		{"old offset mid-instruction", lp200, func(s *container.Spec) { s.Funcs[0].OldOffset += 3 }, "no function of libcalc.so.1 starts there"},
		{"old offset mid-instruction, entry mechanism", lp200, func(s *container.Spec) {
			s.Funcs[0].OldOffset += 3
			s.Funcs[0].Mechanism = container.MechEntry
		}, "no function of libcalc.so.1 starts there"},
		{"old offset on .data, entry mechanism", lp200, func(s *container.Spec) {
			s.Funcs[0].OldOffset, s.Funcs[0].Mechanism, s.Funcs[0].EntryOffset = counter.Offset, container.MechEntry, 0
		}, "not all in one executable segment of libcalc.so.1"},
		{"new offset 0", lp200, func(s *container.Spec) { s.Funcs[0].NewOffset = 0 }, "not in an executable segment of the livepatch"},
		{"new offset on data", misc, func(s *container.Spec) { s.Funcs[0].NewOffset = s.Refs[0].PatchOffset }, "not in an executable segment of the livepatch"},
		{"reference into code", misc, func(s *container.Spec) { s.Refs[0].PatchOffset = s.Funcs[0].NewOffset }, "not in a writable segment of the livepatch"},
		{"two functions one byte apart", lp200, func(s *container.Spec) {
			g := s.Funcs[0]
			g.OldOffset++
			g.Mechanism = container.MechEntry
			s.Funcs = append(s.Funcs, g)
		}, "overlap"},
	}
	p := triggertest.Start(t, nil, fx.App)
	before := codeOf(t, p.PID, "libcalc.so.1")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := craftContainer(t, tt.src, strings.ReplaceAll(tt.name, " ", "_"), tt.mutate)
			rep := trig(t, p.PID, apply(bad))
			if rep.Result != report.Error || !strings.Contains(rep.Reason, tt.want) || !strings.Contains(rep.Reason, "invalid container") {
				t.Errorf("%s %q, want ERROR invalid container ... %q", rep.Result, rep.Reason, tt.want)
			}
			if triggertest.Mapped(t, p.PID, bad) {
				t.Error("the bad container was mapped")
			}
			if !bytes.Equal(codeOf(t, p.PID, "libcalc.so.1"), before) {
				t.Error("the code of libcalc.so.1 changed")
			}
			tp, err := target.Open(p.PID)
			if err != nil {
				t.Fatal(err)
			}
			if l, err := tp.ReadLedger(t.Context()); err != nil || len(l.Patches) != 0 {
				t.Errorf("ledger %+v, %v; want empty", l, err)
			}
			p.Expect(t, map[string]string{"value": "100", "hidden": "50", "counter": "42"})
			p.Untraced(t)
		})
	}
	mustTrig(t, p.PID, apply(lp200), report.Success)
	p.Expect(t, map[string]string{"value": "200"})
}
