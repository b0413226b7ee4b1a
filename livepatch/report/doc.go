// Package report is the contract between the agent and the fleet
// controller: the NDJSON records that `ulp trigger --json`, `ulp patches
// --json` and `ulp messages --json` print (one JSON object per line), the
// action names they carry, the agent's exit statuses, the summary that ends
// a trigger run and how processes are counted ([Summarize], [Count]), and
// the decoders ulpfleet reads the agent's output with ([ParseTrigger],
// [ParsePatches], [ParseMessages]), which treat it as hostile: bounded, and
// an error wrapping [ErrInvalid] instead of a panic. docs/json.md documents
// the records.
//
// Compatibility: fields are only ever added. A change that removes or
// renames a field changes the schema string.
package report
