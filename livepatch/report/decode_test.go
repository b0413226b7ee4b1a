package report

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseTrigger(t *testing.T) {
	procs, sum, err := ParseTrigger(readFile(t, "trigger-ok.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	if len(procs) != 2 || sum.Patched != 1 || sum.Skipped != 1 || procs[1].Reason != "target library not loaded" {
		t.Errorf("got %+v %+v", procs, sum)
	}
	bad := []struct{ in, want string }{
		{``, "no summary"},
		{`{"schema":"ulp.trigger/v1","type":"process","pid":1,"result":"SUCCESS"}`, "no summary"},
		{`{"schema":"other/v1","type":"summary"}`, "schema"},
		{`{"schema":"ulp.trigger/v1","type":"bogus"}`, "unknown record type"},
		{`{"schema":"ulp.trigger/v1","type":"process","pid":0,"result":"SUCCESS"}`, "pid 0"},
		{`{"schema":"ulp.trigger/v1","type":"process","pid":3,"result":"MAYBE"}`, "unknown result"},
		{`{"schema":"ulp.trigger/v1","type":"summary","failed":-1}`, "negative"},
		{`{"schema":"ulp.trigger/v1","type":"summary"}` + "\n" + `{"schema":"ulp.trigger/v1","type":"summary"}`, "after the summary"},
		{`{"schema":"ulp.trigger/v1","type":"process","pid":"x"}`, "invalid agent output"},
		{`{not json`, "invalid agent output"},
	}
	for _, tt := range bad {
		_, _, err := ParseTrigger([]byte(tt.in))
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseTrigger(%s) err = %v, want %q", tt.in, err, tt.want)
		}
	}
}

func TestParsePatches(t *testing.T) {
	procs, err := ParsePatches(readFile(t, "patches.ndjson"))
	if err != nil || len(procs) != 2 || procs[0].Patches[0].ID != "ab12" {
		t.Fatalf("got %+v, %v", procs, err)
	}
	for _, in := range []string{`{"schema":"x","pid":1}`, `{"schema":"ulp.patches/v1","pid":-1}`,
		`{"schema":"ulp.patches/v1","pid":1,"patches":[{"id":""}]}`, `{"schema":"ulp.patches/v1","pid":1,"patches":5}`,
		`{"schema":"ulp.patches/v1","type":"summary","processes":0}` + "\n" + `{"schema":"ulp.patches/v1","pid":1}`,
		`{"schema":"ulp.patches/v1","type":"summary","inaccessible":-1}`, `{"schema":"ulp.messages/v1","type":"summary"}`} {
		if _, err := ParsePatches([]byte(in)); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParsePatches(%s) err = %v", in, err)
		}
	}
}

func TestParseMessages(t *testing.T) {
	procs, err := ParseMessages(readFile(t, "messages.ndjson"))
	if err != nil || len(procs) != 2 || procs[0].Messages[0] != "libpulp loaded (version 0.1.0)" || procs[1].Error == "" {
		t.Fatalf("got %+v, %v", procs, err)
	}
	many := `{"schema":"ulp.messages/v1","pid":1,"messages":[` + strings.Repeat(`"x",`, maxMessages) + `"x"]}`
	for _, in := range []string{`{"schema":"ulp.patches/v1","pid":1}`, `{"schema":"ulp.messages/v1","pid":0}`,
		`{"schema":"ulp.messages/v1","pid":1,"messages":"x"}`, many,
		`{"schema":"ulp.messages/v1","type":"summary"}` + "\n" + `{"schema":"ulp.messages/v1","type":"summary"}`,
		`{"schema":"ulp.messages/v1","type":"summary","failed":-2}`} {
		if _, err := ParseMessages([]byte(in)); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseMessages(%.80s) err = %v", in, err)
		}
	}
}

func FuzzParseMessages(f *testing.F) {
	f.Add(readFile(f, "messages.ndjson"))
	f.Fuzz(func(t *testing.T, data []byte) {
		procs, err := ParseMessages(data)
		if err != nil && procs != nil {
			t.Fatal("records with an error")
		}
	})
}

func FuzzParseTrigger(f *testing.F) {
	for _, n := range []string{"trigger-ok.ndjson", "trigger-error.ndjson"} {
		f.Add(readFile(f, n))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		procs, _, err := ParseTrigger(data)
		if err != nil && procs != nil {
			t.Fatal("records with an error")
		}
		for _, p := range procs {
			if p.PID <= 0 {
				t.Fatalf("pid %d accepted", p.PID)
			}
		}
	})
}

func FuzzParsePatches(f *testing.F) {
	f.Add(readFile(f, "patches.ndjson"))
	f.Fuzz(func(t *testing.T, data []byte) {
		procs, err := ParsePatches(data)
		if err != nil && procs != nil {
			t.Fatal("records with an error")
		}
	})
}
