package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// ErrInvalid means the agent's --json output could not be understood.
var ErrInvalid = errors.New("invalid agent output")

// maxRecords bounds the records accepted from one command's output.
const maxRecords = 1 << 20

// records calls f with every line of out that starts with '{'. Other lines
// (login banners, MOTD noise) are ignored.
func records(out []byte, f func(line []byte) error) error {
	n := 0
	for len(out) > 0 {
		line := out
		if i := bytes.IndexByte(out, '\n'); i >= 0 {
			line, out = out[:i], out[i+1:]
		} else {
			out = nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		if n++; n > maxRecords {
			return fmt.Errorf("%w: more than %d records", ErrInvalid, maxRecords)
		}
		if err := f(line); err != nil {
			return err
		}
	}
	return nil
}

// ParseTrigger parses the NDJSON of `ulp trigger --json`: process records
// followed by exactly one summary record. Hostile input gives an error
// wrapping ErrInvalid, never a panic.
func ParseTrigger(out []byte) ([]Process, Summary, error) {
	var procs []Process
	var sum *Summary
	err := records(out, func(line []byte) error {
		var head struct{ Schema, Type string }
		if err := json.Unmarshal(line, &head); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		if head.Schema != TriggerSchema {
			return fmt.Errorf("%w: schema %q, want %q", ErrInvalid, head.Schema, TriggerSchema)
		}
		if sum != nil {
			return fmt.Errorf("%w: record after the summary", ErrInvalid)
		}
		switch head.Type {
		case TypeProcess:
			var p Process
			if err := json.Unmarshal(line, &p); err != nil {
				return fmt.Errorf("%w: process record: %w", ErrInvalid, err)
			}
			if p.PID <= 0 {
				return fmt.Errorf("%w: process record with pid %d", ErrInvalid, p.PID)
			}
			switch p.Result {
			case Success, Skipped, Error:
			default:
				return fmt.Errorf("%w: pid %d: unknown result %q", ErrInvalid, p.PID, p.Result)
			}
			procs = append(procs, p)
		case TypeSummary:
			var s Summary
			if err := json.Unmarshal(line, &s); err != nil {
				return fmt.Errorf("%w: summary record: %w", ErrInvalid, err)
			}
			if s.Candidates < 0 || s.Patched < 0 || s.Skipped < 0 || s.Failed < 0 || s.PatchesApplied < 0 || s.Inconsistent < 0 || s.Inaccessible < 0 {
				return fmt.Errorf("%w: negative count in summary", ErrInvalid)
			}
			sum = &s
		default:
			return fmt.Errorf("%w: unknown record type %q", ErrInvalid, head.Type)
		}
		return nil
	})
	if err != nil {
		return nil, Summary{}, err
	}
	if sum == nil {
		return nil, Summary{}, fmt.Errorf("%w: no summary record", ErrInvalid)
	}
	return procs, *sum, nil
}

// ParsePatches parses the NDJSON of `ulp patches --json`: one record per
// process with the runtime.
func ParsePatches(out []byte) ([]PatchedProcess, error) {
	var procs []PatchedProcess
	var summed bool
	err := records(out, func(line []byte) error {
		if last, err := listSummary(line, PatchesSchema, &summed); last || err != nil {
			return err
		}
		var p PatchedProcess
		if err := json.Unmarshal(line, &p); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		if p.Schema != PatchesSchema {
			return fmt.Errorf("%w: schema %q, want %q", ErrInvalid, p.Schema, PatchesSchema)
		}
		if p.PID <= 0 {
			return fmt.Errorf("%w: process record with pid %d", ErrInvalid, p.PID)
		}
		for _, ap := range p.Patches {
			if ap.ID == "" {
				return fmt.Errorf("%w: pid %d: patch without id", ErrInvalid, p.PID)
			}
		}
		procs = append(procs, p)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return procs, nil
}

// maxMessages bounds the lines accepted for one process (the runtime's ring
// holds 8 KiB).
const maxMessages = 1 << 14

// ParseMessages parses the NDJSON of `ulp messages --json`: one record per
// process.
func ParseMessages(out []byte) ([]ProcessMessages, error) {
	var procs []ProcessMessages
	var summed bool
	err := records(out, func(line []byte) error {
		if last, err := listSummary(line, MessagesSchema, &summed); last || err != nil {
			return err
		}
		var p ProcessMessages
		if err := json.Unmarshal(line, &p); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		if p.Schema != MessagesSchema {
			return fmt.Errorf("%w: schema %q, want %q", ErrInvalid, p.Schema, MessagesSchema)
		}
		if p.PID <= 0 {
			return fmt.Errorf("%w: process record with pid %d", ErrInvalid, p.PID)
		}
		if len(p.Messages) > maxMessages {
			return fmt.Errorf("%w: pid %d: %d messages, more than %d", ErrInvalid, p.PID, len(p.Messages), maxMessages)
		}
		procs = append(procs, p)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return procs, nil
}

// listSummary checks line against the ListSummary that may end the output
// of `ulp patches --json` and `ulp messages --json`: it reports whether line
// is that summary, and an error for a summary that is malformed or not
// last. *summed records that the summary was seen.
func listSummary(line []byte, schema string, summed *bool) (bool, error) {
	if *summed {
		return true, fmt.Errorf("%w: record after the summary", ErrInvalid)
	}
	var head struct{ Type string }
	if err := json.Unmarshal(line, &head); err != nil {
		return true, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if head.Type != TypeSummary {
		return false, nil
	}
	var s ListSummary
	if err := json.Unmarshal(line, &s); err != nil {
		return true, fmt.Errorf("%w: summary record: %w", ErrInvalid, err)
	}
	if s.Schema != schema {
		return true, fmt.Errorf("%w: schema %q, want %q", ErrInvalid, s.Schema, schema)
	}
	if s.Processes < 0 || s.Failed < 0 || s.Inaccessible < 0 {
		return true, fmt.Errorf("%w: negative count in summary", ErrInvalid)
	}
	*summed = true
	return true, nil
}
