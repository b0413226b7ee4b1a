package report

import "testing"

func TestSummarize(t *testing.T) {
	rec := func(pid int, a Action, r Result) Process { return Process{PID: pid, Action: a, Result: r} }
	tests := []struct {
		name string
		recs []Process
		want Summary
		t    Tally
	}{
		{"none", nil, Summary{}, Tally{}},
		{"one each", []Process{rec(1, Apply, Success), rec(2, Apply, Skipped), rec(3, Apply, Error)},
			Summary{Candidates: 3, Patched: 1, Skipped: 1, Failed: 1, PatchesApplied: 1},
			Tally{Succeeded: 1, Failed: 1, Neither: 1, PatchesApplied: 1}},
		// A process with a SUCCESS and an ERROR is failed in the summary,
		// and both succeeded and failed in the tally.
		{"both", []Process{rec(7, RevertAll, Success), rec(7, Replace, Error), rec(8, Revert, Success)},
			Summary{Candidates: 2, Patched: 1, Failed: 1},
			Tally{Succeeded: 2, Failed: 1, Both: 1}},
		{"patches applied", []Process{rec(1, Apply, Success), rec(1, Replace, Success), rec(1, Revert, Success), {PID: 2, Result: Error, Inconsistent: true}},
			Summary{Candidates: 2, Patched: 1, Failed: 1, PatchesApplied: 2, Inconsistent: 1},
			Tally{Succeeded: 1, Failed: 1, PatchesApplied: 2, Inconsistent: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.want.Schema, tt.want.Type = TriggerSchema, TypeSummary
			if got := Summarize(tt.recs); got != tt.want {
				t.Errorf("Summarize = %+v, want %+v", got, tt.want)
			}
			if got := Count(tt.recs); got != tt.t {
				t.Errorf("Count = %+v, want %+v", got, tt.t)
			}
		})
	}
}
