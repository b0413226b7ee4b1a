package ledger

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"ulp/livepatch/container"
)

// op is one step of a planning scenario.
type op struct {
	kind    string // "apply", "revert", "revert-all", "replace"
	patch   int    // patch number (apply, revert, replace)
	target  string // revert-all, replace
	wantErr error  // nil: success
	// want maps a function index to the patch number whose replacement a
	// call reaches after the step (0: the original function).
	want map[int]int
}

// testPatch returns patch number n of a scenario: it targets target and
// redirects the functions fns of mem.
func testPatch(mem *fakeMem, n int, target string, fns ...int) Patch {
	p := Patch{
		ID:        container.ID{byte(n), 0xaa},
		Container: "/lib/livepatch" + string(rune('0'+n)) + ".so",
		Target:    target,
		BuildID:   []byte{1, 2, 3, 4},
		AppliedAt: time.Unix(1700000000+int64(n), 0).UTC(),
		Labels:    []string{"jsc#SLE-000" + string(rune('0'+n))},
	}
	for _, f := range fns {
		p.Redirects = append(p.Redirects, Redirect{Old: mem.fn(f), New: newAddr(n, f)})
	}
	return p
}

func newAddr(patch, fn int) uint64 { return 0x5500_0000_0000 + uint64(patch)<<16 + uint64(fn)<<4 }

func TestPlanScenarios(t *testing.T) {
	tests := []struct {
		name    string
		endbr   bool
		patches map[int][]int  // patch number -> functions it redirects
		targets map[int]string // patch number -> target ("libx.so" when absent)
		ops     []op
	}{
		{
			// libpulp's tests/revert.py: 100 -> 200 -> 300 -> 400, revert 2, 3, 1.
			name:    "stacked reverted out of order",
			patches: map[int][]int{1: {0}, 2: {0}, 3: {0}},
			ops: []op{
				{kind: "apply", patch: 1, want: map[int]int{0: 1}},
				{kind: "apply", patch: 2, want: map[int]int{0: 2}},
				{kind: "apply", patch: 3, want: map[int]int{0: 3}},
				{kind: "revert", patch: 2, want: map[int]int{0: 3}},
				{kind: "revert", patch: 3, want: map[int]int{0: 1}},
				{kind: "revert", patch: 1, want: map[int]int{0: 0}},
				{kind: "apply", patch: 2, want: map[int]int{0: 2}}, // over the leftover pad
			},
		},
		{
			name:    "stacked with endbr64",
			endbr:   true,
			patches: map[int][]int{1: {0, 1}, 2: {1}},
			ops: []op{
				{kind: "apply", patch: 1, want: map[int]int{0: 1, 1: 1}},
				{kind: "apply", patch: 2, want: map[int]int{0: 1, 1: 2}},
				{kind: "revert", patch: 1, want: map[int]int{0: 0, 1: 2}},
				{kind: "revert", patch: 2, want: map[int]int{0: 0, 1: 0}},
			},
		},
		{
			name:    "already applied and not applied",
			patches: map[int][]int{1: {0}, 2: {1}},
			ops: []op{
				{kind: "revert", patch: 1, wantErr: ErrNotApplied, want: map[int]int{0: 0}},
				{kind: "apply", patch: 1, want: map[int]int{0: 1, 1: 0}},
				{kind: "apply", patch: 1, wantErr: ErrAlreadyApplied, want: map[int]int{0: 1}},
				{kind: "revert", patch: 2, wantErr: ErrNotApplied, want: map[int]int{0: 1}},
			},
		},
		{
			name:    "revert-all of one library",
			patches: map[int][]int{1: {0, 1}, 2: {1, 2}, 3: {3}, 4: {0}},
			targets: map[int]string{3: "liby.so"},
			ops: []op{
				{kind: "revert-all", target: "libx.so", wantErr: ErrNoPatches, want: map[int]int{0: 0}},
				{kind: "apply", patch: 1},
				{kind: "apply", patch: 2},
				{kind: "apply", patch: 3},
				{kind: "apply", patch: 4, want: map[int]int{0: 4, 1: 2, 2: 2, 3: 3}},
				{kind: "revert-all", target: "libx.so", want: map[int]int{0: 0, 1: 0, 2: 0, 3: 3}},
				{kind: "revert-all", target: "libx.so", wantErr: ErrNoPatches, want: map[int]int{3: 3}},
				{kind: "revert-all", target: "liby.so", want: map[int]int{3: 0}},
			},
		},
		{
			name:    "atomic replace",
			patches: map[int][]int{1: {0, 1}, 2: {1, 2}, 3: {0}},
			ops: []op{
				{kind: "replace", target: "libx.so", patch: 1, want: map[int]int{0: 1, 1: 1, 2: 0}},
				{kind: "replace", target: "libx.so", patch: 2, want: map[int]int{0: 0, 1: 2, 2: 2}},
				{kind: "apply", patch: 3, want: map[int]int{0: 3, 1: 2, 2: 2}},
				{kind: "replace", target: "libx.so", patch: 2, want: map[int]int{0: 0, 1: 2, 2: 2}},
			},
		},
		{
			name:    "replace with an invalid patch changes nothing",
			patches: map[int][]int{1: {0}, 2: {}},
			ops: []op{
				{kind: "apply", patch: 1, want: map[int]int{0: 1}},
				{kind: "replace", target: "libx.so", patch: 2, wantErr: ErrInvalid, want: map[int]int{0: 1}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := newCode(4, tt.endbr)
			patch := func(n int) Patch {
				target := tt.targets[n]
				if target == "" {
					target = "libx.so"
				}
				return testPatch(mem, n, target, tt.patches[n]...)
			}
			l := &Ledger{}
			for i, o := range tt.ops {
				var plan *Plan
				var err error
				switch o.kind {
				case "apply":
					plan, err = Apply(l, patch(o.patch), mem)
				case "revert":
					plan, err = Revert(l, patch(o.patch).ID, mem)
				case "revert-all":
					plan, err = RevertAll(l, o.target, mem)
				case "replace":
					plan, err = Replace(l, o.target, patch(o.patch), mem)
				default:
					t.Fatalf("bad op %q", o.kind)
				}
				if !errors.Is(err, o.wantErr) {
					t.Fatalf("step %d %s %d: error %v, want %v", i, o.kind, o.patch, err, o.wantErr)
				}
				if err == nil {
					checkOrder(t, plan)
					mem.write(t, plan.Writes)
					if err := plan.Ledger.Validate(); err != nil {
						t.Fatalf("step %d: invalid ledger: %v", i, err)
					}
					l = roundTrip(t, plan.Ledger)
				}
				for fn, p := range o.want {
					want := mem.fn(fn)
					if p != 0 {
						want = newAddr(p, fn)
					}
					if got := mem.reach(t, mem.fn(fn)); got != want {
						t.Errorf("step %d %s %d: function %d reaches %#x, want %#x", i, o.kind, o.patch, fn, got, want)
					}
					if got := l.Active(mem.fn(fn)); got != want {
						t.Errorf("step %d: ledger says function %d reaches %#x, want %#x", i, fn, got, want)
					}
				}
			}
		})
	}
}

// checkOrder checks that no entry write comes before a pad or slot write.
func checkOrder(t *testing.T, p *Plan) {
	t.Helper()
	seenEntry := false
	for _, w := range p.Writes {
		isEntry := len(w.Data) == entryLen
		if seenEntry && !isEntry {
			t.Fatalf("pad write at %#x after an entry write: %v", w.Addr, p.Writes)
		}
		seenEntry = seenEntry || isEntry
	}
}

func roundTrip(t *testing.T, l *Ledger) *Ledger {
	t.Helper()
	b, err := Encode(l)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	m, err := Decode(b)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if !m.Equal(l) {
		t.Fatalf("round trip changed the ledger:\n%+v\n%+v", l, m)
	}
	return m
}

func TestApplyWritesExactBytes(t *testing.T) {
	for _, endbr := range []bool{false, true} {
		mem := newCode(1, endbr)
		f := mem.fn(0)
		p := testPatch(mem, 1, "libx.so", 0)
		plan, err := Apply(&Ledger{}, p, mem)
		if err != nil {
			t.Fatal(err)
		}
		entry, jmp := f, []byte{0xeb, 0xf0}
		if endbr {
			entry, jmp = f+4, []byte{0xeb, 0xec}
		}
		pad := []byte{0xff, 0x25, 0, 0, 0, 0}
		pad = append(pad, le64(newAddr(1, 0))...)
		want := []Write{{Addr: f - 14, Data: pad}, {Addr: entry, Data: jmp}}
		if len(plan.Writes) != 2 || !eqWrite(plan.Writes[0], want[0]) || !eqWrite(plan.Writes[1], want[1]) {
			t.Errorf("endbr64=%v: writes %x, want %x", endbr, plan.Writes, want)
		}
		s := plan.Ledger.Stack(f)
		if s == nil || !bytes.Equal(s.Orig, []byte{0x66, 0x90}) || s.EntryOffset != uint8(entry-f) || s.Mechanism != container.MechPad {
			t.Errorf("endbr64=%v: stack %+v", endbr, s)
		}
		// Only a thread strictly inside a write must move; one at the entry may stay.
		if plan.Splits(entry) || !plan.Splits(entry+1) || plan.Splits(f-14) || !plan.Splits(f-13) {
			t.Errorf("endbr64=%v: Splits wrong", endbr)
		}
		// Stacking a second patch only rewrites the 8-byte slot.
		mem.write(t, plan.Writes)
		plan2, err := Apply(plan.Ledger, testPatch(mem, 2, "libx.so", 0), mem)
		if err != nil {
			t.Fatal(err)
		}
		if w := (Write{Addr: f - 8, Data: le64(newAddr(2, 0))}); len(plan2.Writes) != 1 || !eqWrite(plan2.Writes[0], w) {
			t.Errorf("endbr64=%v: stacked writes %x, want %x", endbr, plan2.Writes, w)
		}
		// Reverting both restores the original entry bytes only.
		mem.write(t, plan2.Writes)
		plan3, err := RevertAll(plan2.Ledger, "libx.so", mem)
		if err != nil {
			t.Fatal(err)
		}
		if w := (Write{Addr: entry, Data: []byte{0x66, 0x90}}); len(plan3.Writes) != 1 || !eqWrite(plan3.Writes[0], w) {
			t.Errorf("endbr64=%v: revert writes %x, want %x", endbr, plan3.Writes, w)
		}
		if len(plan3.Ledger.Patches) != 0 || len(plan3.Ledger.Stacks) != 0 {
			t.Errorf("endbr64=%v: ledger not empty after revert-all: %+v", endbr, plan3.Ledger)
		}
	}
}

func le64(v uint64) []byte {
	b := make([]byte, 8)
	for i := range b {
		b[i] = byte(v >> (8 * i))
	}
	return b
}

func eqWrite(a, b Write) bool { return a.Addr == b.Addr && bytes.Equal(a.Data, b.Data) }

func TestApplyRejects(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(m *fakeMem) // change the code before applying
		patch   func(m *fakeMem) Patch
		wantErr error
		wantAs  any
	}{
		{
			name:    "no functions",
			patch:   func(m *fakeMem) Patch { return testPatch(m, 1, "libx.so") },
			wantErr: ErrInvalid,
		},
		{
			name:    "no target",
			patch:   func(m *fakeMem) Patch { return testPatch(m, 1, "", 0) },
			wantErr: ErrInvalid,
		},
		{
			name:    "function twice",
			patch:   func(m *fakeMem) Patch { return testPatch(m, 1, "libx.so", 0, 0) },
			wantErr: ErrInvalid,
		},
		{
			name: "zero new address",
			patch: func(m *fakeMem) Patch {
				p := testPatch(m, 1, "libx.so", 0)
				p.Redirects[0].New = 0
				return p
			},
			wantErr: ErrInvalid,
		},
		{
			name:   "no entry nop",
			mutate: func(m *fakeMem) { copy(m.b[padLen:], []byte{0x55, 0x48}) },
			patch:  func(m *fakeMem) Patch { return testPatch(m, 1, "libx.so", 0) },
			wantAs: new(*NotPatchableError),
		},
		{
			name:   "no pad",
			mutate: func(m *fakeMem) { m.b[3] = 0xc3 },
			patch:  func(m *fakeMem) Patch { return testPatch(m, 1, "libx.so", 0) },
			wantAs: new(*NotPatchableError),
		},
		{
			name:   "jump not in the ledger",
			mutate: func(m *fakeMem) { copy(m.b[padLen:], []byte{0xeb, 0xf0}) },
			patch:  func(m *fakeMem) Patch { return testPatch(m, 1, "libx.so", 0) },
			wantAs: new(*NotPatchableError),
		},
		{
			name: "unreadable code",
			patch: func(m *fakeMem) Patch {
				p := testPatch(m, 1, "libx.so", 0)
				p.Redirects[0].Old = 0x1000
				return p
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := newCode(2, false)
			if tt.mutate != nil {
				tt.mutate(mem)
			}
			plan, err := Apply(&Ledger{}, tt.patch(mem), mem)
			if err == nil || plan != nil {
				t.Fatalf("Apply = %v, %v; want an error and no plan", plan, err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v, want %v", err, tt.wantErr)
			}
			if tt.wantAs != nil && !errors.As(err, tt.wantAs) {
				t.Errorf("error %v (%T), want %T", err, err, tt.wantAs)
			}
		})
	}
}

func TestMismatchBlocksPlanning(t *testing.T) {
	mem := newCode(1, false)
	plan, err := Apply(&Ledger{}, testPatch(mem, 1, "libx.so", 0), mem)
	if err != nil {
		t.Fatal(err)
	}
	mem.write(t, plan.Writes)
	// Someone rewrites the slot behind the ledger's back.
	copy(mem.b[padLen-8:], le64(0xdead))
	for name, f := range map[string]func() (*Plan, error){
		"apply":  func() (*Plan, error) { return Apply(plan.Ledger, testPatch(mem, 2, "libx.so", 0), mem) },
		"revert": func() (*Plan, error) { return Revert(plan.Ledger, testPatch(mem, 1, "", 0).ID, mem) },
	} {
		var me *MismatchError
		if _, err := f(); !errors.As(err, &me) || me.Addr != mem.fn(0) {
			t.Errorf("%s: error %v, want a MismatchError at %#x", name, err, mem.fn(0))
		}
	}
}

func TestPlanDoesNotModifyInput(t *testing.T) {
	mem := newCode(2, false)
	plan, err := Apply(&Ledger{}, testPatch(mem, 1, "libx.so", 0, 1), mem)
	if err != nil {
		t.Fatal(err)
	}
	mem.write(t, plan.Writes)
	before := plan.Ledger.Clone()
	if _, err := Replace(plan.Ledger, "libx.so", testPatch(mem, 2, "libx.so", 1), mem); err != nil {
		t.Fatal(err)
	}
	if _, err := Revert(plan.Ledger, testPatch(mem, 1, "", 0).ID, mem); err != nil {
		t.Fatal(err)
	}
	if !before.Equal(plan.Ledger) {
		t.Errorf("planning modified its input ledger")
	}
}

// FuzzApply plans patches on arbitrary code bytes: planning must never
// panic, and whenever it succeeds, performing its writes must make a call
// of the function reach the newest replacement, and reverting must bring
// back the original bytes.
func FuzzApply(f *testing.F) {
	fresh := newCode(1, false).b
	endbr := newCode(1, true).b
	f.Add(fresh[:windowLen+2], uint8(1))
	f.Add(endbr[:windowLen+2], uint8(2))
	f.Add(bytes.Repeat([]byte{0x90}, windowLen), uint8(3))
	f.Add(newEntryCode(1, false).b[:windowLen+2], uint8(1))
	f.Add(newEntryCode(1, true).b[:windowLen+2], uint8(2))
	f.Fuzz(func(t *testing.T, code []byte, n uint8) {
		if len(code) < windowLen {
			return
		}
		mem := &fakeMem{base: 0x400000, b: bytes.Clone(code)}
		orig := bytes.Clone(code)
		l := &Ledger{}
		for i := 1; i <= int(n%4)+1; i++ {
			plan, err := Apply(l, entryPatch(mem, i, 0), mem)
			if err != nil {
				if i == 1 {
					return // not patchable: nothing to check
				}
				t.Fatalf("stacking patch %d failed after patch 1 applied: %v", i, err)
			}
			mem.write(t, plan.Writes)
			if got := mem.reach(t, mem.fn(0)); got != nearAddr(mem, i, 0) {
				t.Fatalf("patch %d: reach %#x, want %#x", i, got, nearAddr(mem, i, 0))
			}
			l = plan.Ledger
		}
		plan, err := RevertAll(l, "libc.so.6", mem)
		if err != nil {
			t.Fatal(err)
		}
		mem.write(t, plan.Writes)
		// Everything from the entry on is back as it was (the pad keeps
		// its unreachable jump).
		if !bytes.Equal(mem.b[padLen:], orig[padLen:]) {
			t.Fatalf("code after revert % x, want % x", mem.b[padLen:], orig[padLen:])
		}
	})
}
