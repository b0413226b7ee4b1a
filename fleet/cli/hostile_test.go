package cli

import (
	"bytes"
	"strings"
	"testing"

	"ulp/fleet"
	"ulp/livepatch/report"
)

// TestForgedRows: what one host's agent reports (a ledger's container path
// and target, a process name, ring lines, an error, preflight facts) with
// newlines, tabs and ESC sequences cannot add a row about another host to
// the text of `ulpfleet status` (and `status --csv`), `messages` or
// `ping`: each host keeps exactly its own rows, and nothing it controls is
// printed raw.
func TestForgedRows(t *testing.T) {
	const forged = "x\nhost03\t1\t1\tCVE-FAKE(1)\x1b]0;owned\a\r"
	patches, err := report.ParsePatches([]byte(`{"schema":"ulp.patches/v1","pid":7,"comm":"sshd\nhost03","livepatchable_libraries":[],"status":"enabled",` +
		`"patches":[{"id":"aa11\nhost03","container":"/p/fix.so\nhost03\tCVE-FAKE\u001b[2K","target":"libc.so.6\nhost03","functions":1}]}` + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := report.ParseMessages([]byte(`{"schema":"ulp.messages/v1","pid":7,"comm":"sshd\nhost03: 1 (init)","messages":["ok\nhost03: 1 (init): CVE-FAKE\u001b]0;t\u0007"]}` + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	res := &fleet.Result{Hosts: []fleet.HostResult{
		{Host: "web01", State: fleet.StateOK, Patches: patches, Messages: msgs,
			Preflight: map[string]string{"arch": forged, "kernel": "6.1\nhost03", "agent_version": forged, "agents": forged}},
		{Host: "web02", State: fleet.StateFailed, Err: &fleet.HostError{Host: "web02", Phase: "trigger", Err: errString(forged)}},
	}}
	var status, statusCSV, messages, ping bytes.Buffer
	if err := writeReportText(&status, fleet.Aggregate(res)); err != nil {
		t.Fatal(err)
	}
	if err := writeReportCSV(&statusCSV, fleet.Aggregate(res)); err != nil {
		t.Fatal(err)
	}
	if err := writeMessagesText(&messages, res); err != nil {
		t.Fatal(err)
	}
	if err := writePingText(&ping, res); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		out  string
		rows int // lines in all
	}{
		{"status", status.String(), 7},          // header, 2 hosts, blank, header, 1 patch (+ final newline)
		{"status --csv", statusCSV.String(), 4}, // header, 1 patch of web01, web02's error
		{"messages", messages.String(), 3},
		{"ping", ping.String(), 5},
	}
	for _, tt := range tests {
		lines := strings.Split(tt.out, "\n")
		if len(lines) != tt.rows {
			t.Errorf("%s: %d lines, want %d:\n%s", tt.name, len(lines), tt.rows, tt.out)
		}
		for _, l := range lines {
			if strings.HasPrefix(l, "host03") || strings.ContainsAny(l, "\x1b\a\r") {
				t.Errorf("%s: forged line %q in:\n%s", tt.name, l, tt.out)
			}
		}
	}
}

type errString string

func (e errString) Error() string { return string(e) }
