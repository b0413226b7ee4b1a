package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"ulp/internal/testenv"
)

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		name        string
		in          []float64
		med, lo, hi float64
		runs        int
	}{
		{"one", []float64{7}, 7, 7, 7, 1},
		{"odd unsorted", []float64{5, 1, 9, 3, 7}, 5, 1, 9, 5},
		{"even: mean of the middle two", []float64{4, 1, 3, 2}, 2.5, 1, 4, 4},
		{"repeated", []float64{2, 2, 2}, 2, 2, 2, 3},
		{"negative deltas", []float64{-8, 44, -132}, -8, -132, 44, 3},
		{"none", nil, 0, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.in)
			f := Summarize("x", "µs", in)
			if f.Median != tc.med || f.Min != tc.lo || f.Max != tc.hi || f.Runs != tc.runs || f.Name != "x" || f.Unit != "µs" {
				t.Errorf("Summarize(%v) = %+v, want median %v min %v max %v runs %d", tc.in, f, tc.med, tc.lo, tc.hi, tc.runs)
			}
			if !slices.Equal(in, tc.in) {
				t.Errorf("Summarize reordered its input: %v", in)
			}
		})
	}
}

func TestFigureAgainst(t *testing.T) {
	f := Summarize("w", "µs", []float64{10, 20, 30}).Against(40, "libpulp")
	if f.Ratio != 0.5 || f.Anchor == nil || f.Anchor.Value != 40 || f.Anchor.Source != "libpulp" {
		t.Errorf("Against: %+v", f)
	}
	if f := Summarize("w", "µs", []float64{1}).Against(0, "none"); f.Ratio != 0 {
		t.Errorf("ratio to a zero anchor: %v, want 0 (left out)", f.Ratio)
	}
}

func TestSamples_KeepFirstSeenOrder(t *testing.T) {
	s := newSamples()
	for _, v := range []float64{3, 1, 2} {
		s.add("b", "ns", v)
		s.add("a", "ms", v*10)
	}
	figs := s.figures()
	if len(figs) != 2 || figs[0].Name != "b" || figs[1].Name != "a" || figs[0].Median != 2 || figs[1].Median != 20 || figs[1].Unit != "ms" {
		t.Errorf("figures: %+v", figs)
	}
}

func TestAnchors(t *testing.T) {
	figs := withLibpulpRatios([]Figure{
		Summarize("idle=0.apply.wall.ulp", "µs", []float64{2030}),
		Summarize("idle=0.apply.wall.libpulp", "µs", []float64{20300}),
		Summarize("idle=0.apply.stall.ulp", "µs", []float64{1}),
		Summarize("procs=100.revert.per-process.ulp", "µs/process", []float64{5}),
	})
	if figs[0].Anchor == nil || figs[0].Anchor.Value != 20300 || figs[0].Ratio != 0.1 || figs[0].Anchor.Source != sameRunSource {
		t.Errorf("apply wall: %+v", figs[0])
	}
	if figs[1].Anchor != nil {
		t.Errorf("libpulp's own figure got an anchor: %+v", figs[1])
	}
	if figs[2].Anchor != nil || figs[3].Anchor != nil {
		t.Errorf("a figure without libpulp's counterpart got an anchor: %+v, %+v", figs[2], figs[3])
	}
	figs = withSSHAnchors([]Figure{
		Summarize("ssh-true.fanout=8.hosts-per-s", "hosts/s", []float64{10}),
		Summarize("apply.fanout=8.hosts-per-s", "hosts/s", []float64{25}),
		Summarize("apply.fanout=1.hosts-per-s", "hosts/s", []float64{5}),
	})
	if figs[1].Anchor == nil || figs[1].Ratio != 2.5 || figs[0].Anchor != nil || figs[2].Anchor != nil {
		t.Errorf("ssh anchors: %+v", figs)
	}
}

// fakeReport is a report of fake samples, as Run would build it.
func fakeReport() *Report {
	cfg := defaultConfig()
	return &Report{Schema: Schema, Started: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC), DurationS: 42,
		Machine: Machine{CPU: "Test CPU", Cores: 2, Kernel: "6.1", OS: "Debian", Glibc: "glibc 2.36", Go: "go1.26",
			LoadStart: "0.1 0.2 0.3", LoadEnd: "0.4 0.5 0.6"},
		Config: cfg,
		Sections: []Section{
			{Name: "libpulp", Title: "side by side", Status: StatusOK, Figures: withLibpulpRatios([]Figure{
				Summarize("idle=0.apply.wall.ulp", "µs", []float64{900, 1000, 1100}),
				Summarize("idle=0.apply.wall.libpulp", "µs", []float64{2000, 2000, 2000}),
				Summarize("idle=0.apply.stall.ulp", "µs", []float64{20, 30, 40}),
			}), Notes: []string{"a note"}},
			{Name: "host", Title: "whole host", Status: StatusLater, Reason: "not measured yet", Figures: []Figure{}},
		}}
}

func TestWriteJSON_Shape(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bench.json")
	if err := WriteJSON(path, fakeReport()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"schema", "started", "duration_s", "machine", "config", "sections"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("report has no %q", k)
		}
	}
	if doc["schema"] != "ulp.bench/v1" {
		t.Errorf("schema %v", doc["schema"])
	}
	m := doc["machine"].(map[string]any)
	for _, k := range []string{"cpu", "cores", "kernel", "os", "glibc", "go", "load_average_start", "load_average_end"} {
		if _, ok := m[k]; !ok {
			t.Errorf("machine has no %q", k)
		}
	}
	secs := doc["sections"].([]any)
	if len(secs) != 2 {
		t.Fatalf("%d sections", len(secs))
	}
	trig := secs[0].(map[string]any)
	fig := trig["figures"].([]any)[0].(map[string]any)
	want := map[string]any{"name": "idle=0.apply.wall.ulp", "unit": "µs", "median": 1000.0, "min": 900.0, "max": 1100.0, "runs": 3.0}
	for k, v := range want {
		if fig[k] != v {
			t.Errorf("figure %s = %v, want %v", k, fig[k], v)
		}
	}
	if a := fig["anchor"].(map[string]any); a["value"] != 2000.0 || fig["ratio"] != 0.5 {
		t.Errorf("anchor %v ratio %v", a, fig["ratio"])
	}
	if _, ok := trig["figures"].([]any)[2].(map[string]any)["anchor"]; ok {
		t.Error("a figure without an anchor has an anchor field")
	}
	host := secs[1].(map[string]any)
	if host["status"] != "later" || host["reason"] == "" || host["figures"] == nil {
		t.Errorf("host section %v", host)
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary file left: %v", err)
	}
}

func TestPrintTable(t *testing.T) {
	var b bytes.Buffer
	PrintTable(&b, fakeReport())
	out := b.String()
	for _, want := range []string{"Test CPU, 2 cores", "== libpulp: side by side", "idle=0.apply.wall.ulp", "1000", "0.5x of 2000 libpulp 0.3.17, this run",
		"note: a note", "== host: whole host [later: not measured yet]"} {
		if !strings.Contains(out, want) {
			t.Errorf("table has no %q:\n%s", want, out)
		}
	}
}

func TestConfig(t *testing.T) {
	if got, err := parseInts("1, 8,64"); err != nil || !slices.Equal(got, []int{1, 8, 64}) {
		t.Errorf("parseInts: %v %v", got, err)
	}
	for _, bad := range []string{"", "1,,2", "0", "-1", "x"} {
		if _, err := parseInts(bad); err == nil {
			t.Errorf("parseInts(%q) accepted", bad)
		}
	}
	if got, err := parseCounts("0,1000"); err != nil || !slices.Equal(got, []int{0, 1000}) {
		t.Errorf("parseCounts: %v %v", got, err)
	}
	for _, bad := range []string{"", "-1", "1,x"} {
		if _, err := parseCounts(bad); err == nil {
			t.Errorf("parseCounts(%q) accepted", bad)
		}
	}
	c := defaultConfig()
	if err := c.validate(); err != nil {
		t.Errorf("default config: %v", err)
	}
	c.Only = []string{"trigger", "nope"}
	if err := c.validate(); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("unknown section: %v", err)
	}
	c = defaultConfig()
	c.Runs = 0
	if err := c.validate(); err == nil {
		t.Error("-runs 0 accepted")
	}
}

func TestVmStatus(t *testing.T) {
	size, rss, err := vmStatus(os.Getpid())
	if err != nil || size <= 0 || rss <= 0 || rss > size {
		t.Errorf("vmStatus(self) = %v, %v, %v", size, rss, err)
	}
	if _, _, err := vmStatus(-1); err == nil {
		t.Error("vmStatus(-1) succeeded")
	}
}

func TestRelay_CountsBothDirections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // a server that reads 1000 bytes and answers 300
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.ReadFull(c, make([]byte, 1000))
		c.Write(make([]byte, 300))
	}()
	r, err := newRelay([]string{ln.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	c, err := net.Dial("tcp", r.lns[0].Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write(make([]byte, 1000))
	got, err := io.ReadAll(c)
	c.Close()
	if err != nil || len(got) != 300 {
		t.Fatalf("read %d bytes, %v", len(got), err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if sent, recv := r.counts(); sent == 1000 && recv == 300 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("relay counted %d sent, %d received; want 1000, 300", sent, recv)
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.reset()
	if sent, recv := r.counts(); sent != 0 || recv != 0 {
		t.Errorf("after reset: %d, %d", sent, recv)
	}
}

// TestRun_Smoke runs every section at tiny sizes against the real
// artifacts of make, real processes and real sshd hosts.
func TestRun_Smoke(t *testing.T) {
	testenv.Require(t, testenv.Root, testenv.Ptrace, testenv.CC, testenv.SSHD, testenv.Build)
	cfg := defaultConfig()
	cfg.Build = testenv.BuildDir()
	cfg.Runs, cfg.Threads, cfg.Calls, cfg.Funcs = 1, []int{2}, 10000, 20
	cfg.FleetHosts, cfg.FleetRuns, cfg.Fanouts = 2, 1, []int{1, 2}
	cfg.HostProcs, cfg.HostRuns = []int{5}, 1
	cfg.LibpulpIdle, cfg.LibpulpProcs = []int{0, 3}, []int{3}
	// The prebuilt libpulp is not part of the project: without it the
	// side-by-side section is skipped, and must say so.
	_, noLibpulp := libpulpDir("")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	wantFigs := map[string][]string{
		"libpulp": {"idle=0.apply.wall.ulp", "idle=0.apply.wall.libpulp", "idle=3.revert.stall.ulp", "idle=3.revert.stall.libpulp",
			"procs=3.apply.per-process.ulp", "procs=3.revert.per-process.libpulp"},
		"trigger": {"pad.threads=2.apply.wall", "pad.threads=2.apply.gap", "pad.threads=2.apply.pause", "pad.threads=2.revert.write",
			"pad.threads=2.idle-gap", "entry.threads=2.apply.wall", "entry.threads=2.revert.gap"},
		"percall":   {"plain", "padded", "pad.unpatched", "pad.patched", "entry.unpatched", "entry.patched"},
		"footprint": {"without.VmRSS", "with-runtime.VmSize", "after-patch.VmRSS"},
		"container": {"packer", "dump"},
		"fleet":     {"ssh-true.fanout=1.per-host", "apply.fanout=2.hosts-per-s", "revert.fanout=1.per-host", "bytes.cold.sent-per-host", "bytes.second.sent-per-host"},
		"host":      {"procs=5.apply.wall", "procs=5.apply.per-process", "procs=5.apply.pause", "procs=5.revert-all.per-process"},
	}
	var names []string
	for _, s := range rep.Sections {
		names = append(names, s.Name)
		if s.Name == "libpulp" && noLibpulp != "" {
			if s.Status != StatusSkipped || s.Reason != noLibpulp {
				t.Errorf("libpulp without the prebuilt libpulp: %s %s, want skipped %s", s.Status, s.Reason, noLibpulp)
			}
			continue
		}
		if s.Status != StatusOK {
			t.Errorf("%s: %s %s", s.Name, s.Status, s.Reason)
		}
		got := map[string]Figure{}
		for _, f := range s.Figures {
			got[f.Name] = f
			if f.Runs < 1 || f.Min > f.Median || f.Median > f.Max {
				t.Errorf("%s: %+v", s.Name, f)
			}
		}
		for _, n := range wantFigs[s.Name] {
			if _, ok := got[n]; !ok {
				t.Errorf("%s: no figure %s", s.Name, n)
			}
		}
	}
	if !slices.Equal(names, sectionNames) {
		t.Errorf("sections %v, want %v", names, sectionNames)
	}
	// A cold run uploads the agent; a second run with nothing changed must
	// send far less.
	for _, s := range rep.Sections {
		var cold, second float64
		for _, f := range s.Figures {
			switch f.Name {
			case "bytes.cold.sent-per-host":
				cold = f.Median
			case "bytes.second.sent-per-host":
				second = f.Median
			}
		}
		if s.Name == "fleet" && (cold < 1e6 || second <= 0 || second*100 > cold) {
			t.Errorf("fleet bytes: cold %v, second %v", cold, second)
		}
	}
}
