// Package report defines the agent's machine-readable output: the NDJSON
// records that `ulp trigger --json` and `ulp patches --json` print, one JSON
// object per line. The fleet controller parses exactly these types, so this
// package is the contract between the two binaries; docs/json.md documents it.
//
// Compatibility: fields are only ever added. A change that removes or
// renames a field changes the schema string.
package report
