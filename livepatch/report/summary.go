package report

// Tally counts the distinct processes (by PID) of a run's process records.
// A process succeeded when any of its records is a SUCCESS and failed when
// any is an ERROR; it can be both.
type Tally struct {
	Succeeded int // processes with at least one SUCCESS
	Failed    int // processes with at least one ERROR
	Both      int // processes counted in Succeeded and in Failed
	Neither   int // processes with neither (every record SKIPPED)
	// PatchesApplied counts the successful apply and replace records,
	// Inconsistent the records that may have left their process
	// inconsistent.
	PatchesApplied int
	Inconsistent   int
}

// Count tallies recs, which may hold several records of one process (one a
// request) and the records of several runs.
func Count(recs []Process) Tally {
	type seen struct{ ok, bad bool }
	by := make(map[int]*seen)
	var order []int
	var t Tally
	for _, p := range recs {
		s, ok := by[p.PID]
		if !ok {
			s = &seen{}
			by[p.PID] = s
			order = append(order, p.PID)
		}
		switch p.Result {
		case Success:
			s.ok = true
			if p.Action.Loads() {
				t.PatchesApplied++
			}
		case Error:
			s.bad = true
		}
		if p.Inconsistent {
			t.Inconsistent++
		}
	}
	for _, pid := range order {
		s := by[pid]
		switch {
		case s.ok && s.bad:
			t.Succeeded++
			t.Failed++
			t.Both++
		case s.ok:
			t.Succeeded++
		case s.bad:
			t.Failed++
		default:
			t.Neither++
		}
	}
	return t
}

// Summarize returns the summary record that ends `ulp trigger --json` for
// the records of one run: every candidate process is counted once, as
// failed when any of its records is an ERROR, else patched when any is a
// SUCCESS, else skipped.
func Summarize(recs []Process) Summary {
	t := Count(recs)
	return Summary{
		Schema:         TriggerSchema,
		Type:           TypeSummary,
		Candidates:     t.Succeeded + t.Failed - t.Both + t.Neither,
		Patched:        t.Succeeded - t.Both,
		Skipped:        t.Neither,
		Failed:         t.Failed,
		PatchesApplied: t.PatchesApplied,
		Inconsistent:   t.Inconsistent,
	}
}
