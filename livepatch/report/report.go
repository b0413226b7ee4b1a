package report

import "time"

// Schema strings carried in every record's "schema" field.
const (
	TriggerSchema  = "ulp.trigger/v1"
	PatchesSchema  = "ulp.patches/v1"
	MessagesSchema = "ulp.messages/v1"
)

// Result is the outcome of one trigger on one process.
type Result string

// The three outcomes, printed verbatim in the human output too.
const (
	Success Result = "SUCCESS"
	Skipped Result = "SKIPPED"
	Error   Result = "ERROR"
)

// Action is what a trigger does to a process, in the "action" field.
type Action string

// The actions.
const (
	Apply     Action = "apply"
	Revert    Action = "revert"
	RevertAll Action = "revert-all"
	Replace   Action = "replace"
)

// Loads reports whether a maps a container into the process (apply and
// replace do; the reverts only take patches back).
func (a Action) Loads() bool { return a == Apply || a == Replace }

// Exit statuses of `ulp`. They are listed under EXIT STATUS in `ulp --help`
// and in docs/cli.md; livepatch/cli uses these names, its ExitCode is the
// only place that maps errors to them, and ulpfleet reads them from the
// agent it runs.
const (
	ExitOK           = 0 // success; for trigger: no process reported ERROR
	ExitFailure      = 1 // at least one ERROR; for check: not applied; for livepatchable: no
	ExitUsage        = 2 // bad usage or invalid input (nothing was changed)
	ExitInconsistent = 3 // a process may have been left inconsistent (see stderr)
)

// Record types, in the "type" field.
const (
	TypeProcess = "process"
	TypeSummary = "summary"
)

// Process is one per-process line of `ulp trigger --json`.
type Process struct {
	Schema  string `json:"schema"`
	Type    string `json:"type"` // TypeProcess
	PID     int    `json:"pid"`
	Comm    string `json:"comm"`
	Patch   string `json:"patch"`            // container path
	PatchID string `json:"patch_id"`         // hex
	Action  Action `json:"action"`           // Apply, Revert, RevertAll or Replace
	Result  Result `json:"result"`           // SUCCESS, SKIPPED or ERROR
	Reason  string `json:"reason,omitempty"` // why SKIPPED or ERROR
	// Inconsistent is set when the process may have been left in a state
	// other than "old code" or "new code" (exit status 3).
	Inconsistent bool    `json:"inconsistent,omitempty"`
	Timings      Timings `json:"timings"`
}

// Timings are the phases of one trigger, in microseconds.
type Timings struct {
	TotalUS  int64 `json:"total_us"`
	AttachUS int64 `json:"attach_us"`
	LoadUS   int64 `json:"load_us"`  // container load inside the process (threads running)
	WriteUS  int64 `json:"write_us"` // code write (all threads stopped, or none: docs/json.md)
	DetachUS int64 `json:"detach_us"`
	PauseUS  int64 `json:"pause_us"` // longest time every thread was stopped
}

// Summary is the last line of `ulp trigger --json`.
type Summary struct {
	Schema         string `json:"schema"`
	Type           string `json:"type"` // TypeSummary
	Candidates     int    `json:"candidates"`
	Patched        int    `json:"patched"` // processes with at least one SUCCESS
	Skipped        int    `json:"skipped"`
	Failed         int    `json:"failed"`
	PatchesApplied int    `json:"patches_applied"`
	Inconsistent   int    `json:"inconsistent"`
	// Inaccessible counts the processes of a whole-host run (no -p, or a
	// glob) left out because the agent may not inspect them: not
	// candidates, not failures.
	Inaccessible int `json:"inaccessible"`
}

// AppliedPatch is one entry of a process's ledger.
type AppliedPatch struct {
	ID        string    `json:"id"` // hex
	Container string    `json:"container"`
	Target    string    `json:"target"`
	AppliedAt time.Time `json:"applied_at"`
	Labels    []string  `json:"labels,omitempty"`
	Functions int       `json:"functions"`
}

// ListSummary is the last line of `ulp patches --json` and `ulp messages
// --json` (their schema, Type TypeSummary): how many processes were
// listed, how many of them could not be read, and how many a whole-host
// selection left out because the caller may not inspect them.
type ListSummary struct {
	Schema       string `json:"schema"`
	Type         string `json:"type"` // TypeSummary
	Processes    int    `json:"processes"`
	Failed       int    `json:"failed"`
	Inaccessible int    `json:"inaccessible"`
}

// PatchedProcess is one line of `ulp patches --json`.
type PatchedProcess struct {
	Schema    string         `json:"schema"`
	PID       int            `json:"pid"`
	Comm      string         `json:"comm"`
	Libraries []string       `json:"livepatchable_libraries"`
	Patches   []AppliedPatch `json:"patches"`
	// Status says whether the runtime accepts patches (StatusEnabled,
	// StatusDisabled, or StatusUnknown when the process could not be read),
	// and StatusReason why it does not.
	Status       PatchingStatus `json:"status"`
	StatusReason string         `json:"status_reason,omitempty"`
	// Error is set when the process could not be read (e.g. permission).
	Error string `json:"error,omitempty"`
}

// PatchingStatus is whether a process's runtime accepts patches.
type PatchingStatus string

// The values of PatchedProcess.Status.
const (
	StatusEnabled  PatchingStatus = "enabled"  // the runtime accepts patches
	StatusDisabled PatchingStatus = "disabled" // by the user's settings, at run time, or broken
	StatusUnknown  PatchingStatus = "unknown"  // the process could not be read (Error says why)
)

// ProcessMessages is one line of `ulp messages --json`: the runtime's
// message ring of one process, oldest line first.
type ProcessMessages struct {
	Schema   string   `json:"schema"`
	PID      int      `json:"pid"`
	Comm     string   `json:"comm"`
	Messages []string `json:"messages"`
	// Error is set when the process could not be read (e.g. permission,
	// no runtime).
	Error string `json:"error,omitempty"`
}
