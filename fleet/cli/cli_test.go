package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"ulp/fleet"
	"ulp/internal/testenv"
	"ulp/inventory"
	"ulp/livepatch/report"
	"ulp/remote"
	"ulp/remote/remotetest"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestMain keeps the default results file (under $XDG_STATE_HOME) out of
// the home folder.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ulpfleet-state-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("XDG_STATE_HOME", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func golden(t *testing.T, name string, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if d := cmp.Diff(string(want), got); d != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", name, d)
	}
}

// sampleContainer is a real livepatch container from the container tests.
var sampleContainer = filepath.Join("..", "..", "livepatch", "container", "testdata", "sample.so")

func fakeAgent(t *testing.T) string {
	p, err := filepath.Abs(filepath.Join("testdata", "fakeagent.sh"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// cliRun runs ulpfleet with args and returns the exit status, stdout and
// stderr.
func cliRun(ctx context.Context, t *testing.T, args ...string) (int, string, string, *app) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	a := newApp(&stdout, &stderr)
	code := a.run(ctx, args)
	t.Logf("ulpfleet %s -> %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, stdout.String(), stderr.String())
	return code, stdout.String(), stderr.String(), a
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errors.New("x"), 1},
		{usageError(errors.New("x")), 2},
		{fmt.Errorf("a: %w", fleet.ErrPlan), 2},
		{errors.Join(errors.New("host a"), fmt.Errorf("%w: gate", fleet.ErrStopped)), 3},
		{errors.Join(errors.New("host a"), context.Canceled), 130},
		{&ExitError{Code: 3}, 3},
	}
	for _, tt := range tests {
		var w bytes.Buffer
		if got := ExitCode(&w, tt.err); got != tt.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
		if (tt.err != nil && tt.want != 3 || tt.err == nil) && (w.Len() > 0) == (tt.err == nil) {
			t.Errorf("ExitCode(%v) printed %q", tt.err, w.String())
		}
	}
}

func writeInventory(t *testing.T, yaml string) string {
	p := filepath.Join(t.TempDir(), "hosts.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSettings_Precedence(t *testing.T) {
	inv := writeInventory(t, "all:\n  hosts:\n    a:\n    b:\n")
	cfgFile := filepath.Join(t.TempDir(), "ulpfleet.yaml")
	os.WriteFile(cfgFile, []byte("parallel: 3\nmax-failures: 4\ncanary: [group:x, '2']\ntimeout: 1m\nknown-hosts: [/k1, /k2]\nsudo: true\n"), 0o644)
	t.Setenv("ULPFLEET_MAX_FAILURES", "5")
	t.Setenv("ULPFLEET_UPLOAD_PARALLEL", "6")
	t.Setenv("ULPFLEET_INVENTORY", inv)
	code, _, _, a := cliRun(t.Context(), t, "plan", "--config", cfgFile, "--parallel", "7", "--canary", "1",
		"--agent", fakeAgent(t), sampleContainer)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	c := a.cfg
	// flag > env > config file > default
	if c.Parallel != 7 || c.MaxFailures != 5 || c.UploadParallel != 6 || c.Timeout != time.Minute ||
		!c.Sudo || c.Inventory != inv || strings.Join(c.Canary, ",") != "1" || strings.Join(c.KnownHosts, ",") != "/k1,/k2" {
		t.Errorf("settings %+v", c)
	}
}

func TestSettings_Errors(t *testing.T) {
	inv := writeInventory(t, "all:\n  hosts:\n    a:\n")
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("paralel: 3\n"), 0o644)
	badValue := filepath.Join(t.TempDir(), "bad-value.yaml")
	os.WriteFile(badValue, []byte("parallel: many\n"), 0o644)
	t.Setenv("SSH_AUTH_SOCK", "")
	badInv := writeInventory(t, "all:\n  hosts:\n    w[3:1]:\n")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown config key", []string{"plan", "--config", bad, "-i", inv}, `config ` + bad + `: unknown setting "paralel"`},
		{"missing config", []string{"plan", "--config", "/nonexistent.yaml", "-i", inv}, "config /nonexistent.yaml"},
		{"bad parallel", []string{"plan", "-i", inv, "--parallel", "0"}, "--parallel"},
		{"bad flag", []string{"plan", "--parallel", "x"}, "invalid argument"},
		{"no inventory", []string{"plan", "--agent", "/bin/true", sampleContainer}, "no inventory"},
		{"bad inventory", []string{"plan", "-i", badInv, "--agent", "/bin/true", sampleContainer}, "end is before begin"},
		{"limit matches nothing", []string{"plan", "-i", inv, "-l", "nosuch", "--agent", "/bin/true", sampleContainer}, "no host matches"},
		{"not a container", []string{"apply", "-i", inv, "--agent", "/bin/true", "/etc/hostname"}, "not a livepatch container"},
		{"no containers", []string{"apply", "-i", inv}, "requires at least 1 arg"},
		{"revert nothing", []string{"revert", "-i", inv}, "revert needs"},
		{"bad canary", []string{"plan", "-i", inv, "--canary", "x", "--agent", "/bin/true", sampleContainer}, "canary"},
		{"bad staging", []string{"plan", "-i", inv, "--staging-dir", "tmp", "--agent", "/bin/true", sampleContainer}, "staging-dir"},
		{"bad value in config", []string{"plan", "--config", badValue, "-i", inv}, `parallel in ` + badValue + `: "many" is not a whole number`},
		{"bad value in env", []string{"plan", "-i", inv}, `ULPFLEET_TIMEOUT: "soon" is not a duration`},
		{"invalid value in env", []string{"plan", "-i", inv}, "ULPFLEET_UPLOAD_PARALLEL: must not be negative"},
		{"no key and no ssh-agent", []string{"ping", "-i", inv, "--agent", "/bin/true"}, "no ssh-agent (SSH_AUTH_SOCK is not set)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			switch tt.name {
			case "bad value in env":
				t.Setenv("ULPFLEET_TIMEOUT", "soon")
			case "invalid value in env":
				t.Setenv("ULPFLEET_UPLOAD_PARALLEL", "-1")
			}
			code, stdout, stderr, _ := cliRun(t.Context(), t, tt.args...)
			if code != ExitUsage || !strings.Contains(stderr, tt.want) || stdout != "" {
				t.Errorf("exit %d, stderr %q; want 2 and %q, nothing on stdout", code, stderr, tt.want)
			}
		})
	}
}

// outputFixture is a plan and a result with one host in every state.
func outputFixture(t *testing.T) (*fleet.Plan, *fleet.Result) {
	var hs []inventory.Host
	for _, n := range []string{"web01.example.com", "web02.example.com", "Web03.Example.COM", "db1", "db2", "db3"} {
		hs = append(hs, inventory.Host{Name: n, Addr: n, Port: 22, Groups: []string{"all"}})
	}
	p, err := fleet.NewPlan(hs, fleet.Options{Action: fleet.Apply, Agent: fleet.NewArtifact("ulp", []byte("agent")),
		Containers: []fleet.Artifact{fleet.NewArtifact("fix.so", []byte("fix"))}, Canary: []string{"2"}})
	if err != nil {
		t.Fatal(err)
	}
	procs := []report.Process{{Schema: report.TriggerSchema, Type: report.TypeProcess, PID: 10, Comm: "app", Result: report.Success},
		{Schema: report.TriggerSchema, Type: report.TypeProcess, PID: 11, Comm: "cron", Result: report.Skipped, Reason: "target library not loaded"},
		{Schema: report.TriggerSchema, Type: report.TypeProcess, PID: 12, Comm: "sh", Result: report.Skipped, Reason: "target library not loaded\x1b[2J"}}
	res := &fleet.Result{Action: fleet.Apply, Hosts: []fleet.HostResult{
		{Host: "web01.example.com", Wave: 0, State: fleet.StateOK, Patched: 3, Skipped: 1, Processes: procs, Uploaded: 2, AgentRan: true},
		{Host: "web02.example.com", Wave: 0, State: fleet.StateError, Phase: "trigger", Patched: 1, Failed: 1, AgentRan: true,
			Err: &fleet.HostError{Host: "web02.example.com", Phase: "trigger", Err: fmt.Errorf("%w: 1 process(es) reported ERROR, 1 patched", fleet.ErrProcessFailed)}},
		{Host: "Web03.Example.COM", Wave: 1, State: fleet.StateFailed, Phase: "connect",
			Err: &fleet.HostError{Host: "Web03.Example.COM", Phase: "connect", Err: fmt.Errorf("remote: dial Web03.Example.COM:22: %w: connection refused", remote.ErrUnreachable)}},
		{Host: "db1", Wave: 1, State: fleet.StateFailed, Phase: "connect",
			Err: &fleet.HostError{Host: "db1", Phase: "connect", Err: fmt.Errorf("remote: dial db1:22: %w", remote.ErrHostKeyMismatch)}},
		{Host: "db2", Wave: 1, State: fleet.StateInterrupted, Phase: "trigger", AgentRan: true, Patched: 2,
			Err: &fleet.HostError{Host: "db2", Phase: "trigger", Err: context.Canceled}},
		{Host: "db3", Wave: 1, State: fleet.StateNotAttempted},
	}, Stopped: "canary gate: 1 host(s) failed, more than --max-failures 0 (in wave 1, canary 1)"}
	return p, res
}

func TestOutput_Golden(t *testing.T) {
	p, res := outputFixture(t)
	var b bytes.Buffer
	if err := writeResultText(&b, p, res); err != nil {
		t.Fatal(err)
	}
	golden(t, "result.golden", b.String())
	b.Reset()
	if err := writeResultJSON(&b, p, res, false); err != nil {
		t.Fatal(err)
	}
	golden(t, "result.json.golden", b.String())
	for i, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("line %d is not JSON: %v", i+1, err)
		}
	}
	b.Reset()
	rep := fleet.Report{
		Hosts: []fleet.HostStatus{{Host: "web01", Processes: 4, Patched: 2, Patches: map[string]int{"aa11": 2, "bb22": 1}},
			{Host: "web02", Processes: 1, Patched: 0, Patches: map[string]int{}},
			{Host: "db1", Error: "host db1: connect: host unreachable"}},
		Patches: []fleet.PatchCount{{ID: "aa11", Container: "/var/lib/ulp/patches/5c9e01d2a4b7f803/fix.so", Target: "libcrypto.so.3", Hosts: 1, Processes: 2, HostNames: []string{"web01"}},
			{ID: "bb22", Container: "/var/lib/ulp/patches/e17a40c3b9d26f15/fix2.so", Target: "libc.so.6", Hosts: 1, Processes: 1, HostNames: []string{"web01"}}},
	}
	if err := writeReportText(&b, rep); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.golden", b.String())
	b.Reset()
	if err := writeReportCSV(&b, rep); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.csv.golden", b.String())

	b.Reset()
	pr := &progress{w: &b, plan: p}
	pr.observe(fleet.Event{Kind: fleet.WaveStarted, Wave: 0, Total: 6})
	pr.observe(fleet.Event{Kind: fleet.HostStarted, Host: "web01.example.com", Total: 6})
	pr.observe(fleet.Event{Kind: fleet.HostDone, Host: "web01.example.com", Result: &res.Hosts[0], Total: 6})
	pr.clear()
	golden(t, "progress.golden", b.String())
}

// inProcessFleet is n in-process SSH servers (remotetest), each with its own
// staging folder, and the arguments that reach them.
type inProcessFleet struct {
	args    []string
	staging []string
	servers []*remotetest.Server
}

// startInProcessFleet starts n hosts named host01...; host01 is in group
// canary. extra is appended to the inventory's hosts of group rest.
func startInProcessFleet(t *testing.T, n int, extra string) *inProcessFleet {
	f := &inProcessFleet{}
	var known, ids []string
	var canary, rest strings.Builder
	for i := range n {
		s := remotetest.NewServer(t)
		f.servers = append(f.servers, s)
		_, port, _ := net.SplitHostPort(s.Addr)
		dir := t.TempDir()
		f.staging = append(f.staging, dir)
		known = append(known, s.KnownHosts)
		ids = append(ids, s.Identity)
		line := fmt.Sprintf("        host%02d: {ansible_host: 127.0.0.1, ansible_port: %s, ulp_staging_dir: %s}\n", i+1, port, dir)
		if i == 0 {
			canary.WriteString(line)
		} else {
			rest.WriteString(line)
		}
	}
	inv := writeInventory(t, "all:\n  vars: {ansible_user: root}\n  children:\n    canary:\n      hosts:\n"+canary.String()+
		"    rest:\n      hosts:\n"+rest.String()+extra)
	f.args = []string{"-i", inv, "--known-hosts", strings.Join(known, ","), "--identity", strings.Join(ids, ","),
		"--agent", fakeAgent(t), "--canary", "group:canary", "--timeout", "30s"}
	return f
}

// withoutCanary returns args without their --canary flag.
func withoutCanary(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		if args[i] == "--canary" {
			i++
			continue
		}
		out = append(out, args[i])
	}
	return append(out, "--canary", "0")
}

func (f *inProcessFleet) setMode(t *testing.T, host int, mode string) {
	if err := os.WriteFile(filepath.Join(f.staging[host], "mode"), []byte(mode), 0o644); err != nil {
		t.Fatal(err)
	}
}

func decodeRecords(t *testing.T, out string) (hosts []hostRecord, sum summaryRecord) {
	t.Helper()
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var head struct{ Type string }
		if err := json.Unmarshal([]byte(line), &head); err != nil {
			t.Fatalf("bad JSON line %q: %v", line, err)
		}
		switch head.Type {
		case "host":
			var h hostRecord
			json.Unmarshal([]byte(line), &h)
			hosts = append(hosts, h)
		case "summary":
			json.Unmarshal([]byte(line), &sum)
		}
	}
	// Records stream in as hosts finish: put them in plan order.
	slices.SortFunc(hosts, func(a, b hostRecord) int { return a.Index - b.Index })
	for i, h := range hosts {
		if h.Index != i {
			t.Fatalf("records: index %d at position %d (missing or duplicate host)", h.Index, i)
		}
	}
	return hosts, sum
}

func classes(hs []hostRecord) string {
	var s []string
	for _, h := range hs {
		s = append(s, h.Host+"="+h.Class)
	}
	return strings.Join(s, " ")
}

// TestRollout_InProcessSSH drives apply, status and revert through real
// SSH and SFTP (in-process servers running real commands) with a stand-in
// agent.
func TestRollout_InProcessSSH(t *testing.T) {
	f := startInProcessFleet(t, 3, "")
	ctx := t.Context()
	// push stages the files and triggers nothing.
	code, out, _, _ := cliRun(ctx, t, append([]string{"push", "--json", sampleContainer}, f.args...)...)
	hosts, sum := decodeRecords(t, out)
	if code != 0 || sum.OK != 3 || hosts[1].Uploaded != 2 || len(hosts[1].Processes) != 0 {
		t.Fatalf("push: exit %d, %+v, %+v", code, sum, hosts[1])
	}
	if _, err := os.Stat(filepath.Join(f.staging[1], "ledger")); err == nil {
		t.Error("push triggered the agent")
	}
	code, out, _, _ = cliRun(ctx, t, append([]string{"apply", "--json", sampleContainer}, f.args...)...)
	hosts, sum = decodeRecords(t, out)
	if code != 0 || sum.OK != 3 || sum.Patched != 3 || classes(hosts) != "host01=success host02=success host03=success" {
		t.Fatalf("apply: exit %d, %s, %+v", code, classes(hosts), sum)
	}
	if hosts[0].Uploaded != 0 || hosts[0].Unchanged != 2 || len(hosts[0].Processes) != 2 {
		t.Errorf("host01 (files pushed before): %+v", hosts[0])
	}
	// The agent is executable and content-addressed on the host.
	agents, _ := filepath.Glob(filepath.Join(f.staging[1], "bin", "ulp-*"))
	if fi, err := os.Stat(agents[0]); len(agents) != 1 || err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("agent on host02: %v %v", agents, err)
	}

	// Again: nothing to upload.
	code, out, _, _ = cliRun(ctx, t, append([]string{"apply", "--json", sampleContainer}, f.args...)...)
	hosts, _ = decodeRecords(t, out)
	if code != 0 || hosts[2].Uploaded != 0 || hosts[2].Unchanged != 2 {
		t.Errorf("second apply: exit %d, host03 %+v", code, hosts[2])
	}

	code, out, _, _ = cliRun(ctx, t, append([]string{"status", "--json"}, f.args...)...)
	var rep fleet.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 {
		t.Fatalf("status: exit %d, %v", code, err)
	}
	if len(rep.Patches) != 1 || rep.Patches[0].Hosts != 3 || rep.Patches[0].Processes != 6 || rep.Hosts[1].Processes != 2 {
		// Two applies: the fake agent's ledger holds the patch twice per host.
		t.Errorf("report %+v", rep)
	}

	// messages: every host's processes, a process that cannot be read is
	// data, not a failed host.
	id := rep.Patches[0].ID
	code, out, _, _ = cliRun(ctx, t, append([]string{"messages"}, f.args...)...)
	if code != 0 || !strings.Contains(out, "host02: 4242 (app): libpulp loaded (version 0.1.0)\nhost02: 4242 (app): ulp: applied "+id+"\n") ||
		!strings.Contains(out, "host03: 4243 (other): error: cannot read process: permission denied\n") {
		t.Errorf("messages: exit %d\n%s", code, out)
	}
	code, out, _, _ = cliRun(ctx, t, append([]string{"messages", "--json"}, f.args...)...)
	var mrecs []messagesRecord
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r messagesRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("messages --json: %v: %q", err, line)
		}
		mrecs = append(mrecs, r)
	}
	if code != 0 || len(mrecs) != 3 || mrecs[0].Schema != messagesSchema || mrecs[0].Class != "success" ||
		len(mrecs[0].Processes) != 2 || len(mrecs[0].Processes[0].Messages) != 3 {
		t.Errorf("messages --json: exit %d, %+v", code, mrecs)
	}

	code, out, _, _ = cliRun(ctx, t, append([]string{"revert", sampleContainer}, f.args...)...)
	if code != 0 || !strings.Contains(out, "revert: 3 hosts: 3 ok") {
		t.Errorf("revert: exit %d", code)
	}
	code, out, _, _ = cliRun(ctx, t, append([]string{"report"}, f.args...)...)
	if code != 0 || !strings.Contains(out, "(no patches applied on any host)") {
		t.Errorf("report after revert: exit %d\n%s", code, out)
	}
}

// TestPing_InProcessSSH: ping reports each host's facts and changes
// nothing; after an apply the agent is present.
func TestPing_InProcessSSH(t *testing.T) {
	f := startInProcessFleet(t, 2, "")
	arch, err := exec.Command("uname", "-m").Output()
	if err != nil {
		t.Fatal(err)
	}
	ping := func() []pingRecord {
		code, out, _, _ := cliRun(t.Context(), t, append([]string{"ping", "--json"}, f.args...)...)
		if code != 0 {
			t.Fatalf("ping: exit %d", code)
		}
		var recs []pingRecord
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var r pingRecord
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatal(err)
			}
			recs = append(recs, r)
		}
		return recs
	}
	recs := ping()
	if len(recs) != 2 || recs[0].Class != "success" || recs[0].Preflight["arch"] != strings.TrimSpace(string(arch)) ||
		recs[0].Preflight["agent"] != "missing" || recs[0].Preflight["staging_exists"] != "yes" || recs[1].Preflight["free_kib"] == "" {
		t.Errorf("ping: %+v", recs)
	}
	if ents, _ := os.ReadDir(f.staging[0]); len(ents) != 0 {
		t.Errorf("ping wrote %d entries into the staging folder", len(ents))
	}
	if code, _, _, _ := cliRun(t.Context(), t, append([]string{"apply", sampleContainer}, f.args...)...); code != 0 {
		t.Fatalf("apply: exit %d", code)
	}
	// Another agent version in host02's staging folder.
	if err := os.WriteFile(filepath.Join(f.staging[1], "bin", "ulp-0123456789abcdef"), []byte("old"), 0o755); err != nil {
		t.Fatal(err)
	}
	recs = ping()
	v := recs[1].Preflight["agent_version"]
	if len(v) != 16 || recs[1].Preflight["agent"] != "present" || recs[1].Preflight["agents"] != "0123456789abcdef "+v {
		t.Errorf("after apply: %+v", recs[1])
	}
	if _, ok := recs[1].Preflight["runtime_library"]; !ok || recs[1].Preflight["preload"] == "" {
		t.Errorf("no runtime facts: %+v", recs[1])
	}
	code, out, _, _ := cliRun(t.Context(), t, append([]string{"ping"}, f.args...)...)
	if code != 0 || !strings.Contains(out, "host02  success  ") || !strings.Contains(out, v+" present") ||
		!strings.Contains(out, "other agent versions: 0123456789abcdef") || !strings.Contains(out, "ping: 2 hosts: 2 ok") {
		t.Errorf("ping table: exit %d\n%s", code, out)
	}
}

func TestRollout_CanaryGate_InProcessSSH(t *testing.T) {
	f := startInProcessFleet(t, 3, "")
	f.setMode(t, 0, "error")
	code, out, stderr, _ := cliRun(t.Context(), t, append([]string{"apply", sampleContainer}, f.args...)...)
	if code != ExitStopped || !strings.Contains(stderr, "canary gate") {
		t.Fatalf("exit %d, want 3 (stopped at the canary gate)", code)
	}
	for _, want := range []string{"host01  canary 1  patch_failed", "host02  rest      not_attempted", "stopped: canary gate"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// Nothing was uploaded to the hosts after the gate.
	for _, i := range []int{1, 2} {
		if ents, _ := os.ReadDir(f.staging[i]); len(ents) != 0 {
			t.Errorf("host%02d staging has %d entries", i+1, len(ents))
		}
	}
}

func TestRollout_FailureClasses_InProcessSSH(t *testing.T) {
	refused := remotetest.Refused(t)
	rhost, rport, _ := net.SplitHostPort(refused)
	stranger := remotetest.NewServer(t) // its host key is in no known_hosts file given
	_, sport, _ := net.SplitHostPort(stranger.Addr)
	extra := fmt.Sprintf("        down: {ansible_host: %s, ansible_port: %s}\n        stranger: {ansible_host: 127.0.0.1, ansible_port: %s}\n", rhost, rport, sport)
	f := startInProcessFleet(t, 3, extra)
	f.setMode(t, 2, "crash")
	results := filepath.Join(t.TempDir(), "run.ndjson")
	code, out, _, _ := cliRun(t.Context(), t, append([]string{"apply", "--json", "--max-failures", "5", "--results", results, sampleContainer}, f.args...)...)
	hosts, sum := decodeRecords(t, out)
	want := "host01=success host02=success host03=agent_error down=unreachable stranger=host_key_unknown"
	if code != ExitFailure || classes(hosts) != want {
		t.Errorf("exit %d, classes\n got %s\nwant %s", code, classes(hosts), want)
	}
	if sum.OK != 2 || sum.Failed != 3 || !strings.Contains(hosts[2].Error, "crashed") {
		t.Errorf("summary %+v, host03 error %q", sum, hosts[2].Error)
	}
	// The results file holds the same records; retry reruns its failed hosts.
	saved, err := os.ReadFile(results)
	if err != nil {
		t.Fatal(err)
	}
	savedHosts, savedSum := decodeRecords(t, string(saved))
	if d := cmp.Diff(hosts, savedHosts); d != "" {
		t.Errorf("results file differs from the output (-out +file):\n%s", d)
	}
	if d := cmp.Diff(sum, savedSum, cmpopts.IgnoreUnexported(fleet.Artifact{})); d != "" {
		t.Errorf("results summary differs from the output (-out +file):\n%s", d)
	}
	code, out, _, _ = cliRun(t.Context(), t, append([]string{"retry", "--dry-run", "--results", results}, withoutCanary(f.args)...)...)
	if code != 0 || !strings.Contains(out, "on 3 hosts") || !strings.Contains(out, "  host03  ") ||
		!strings.Contains(out, "  down  ") || !strings.Contains(out, "  stranger  ") {
		t.Errorf("retry --dry-run: exit %d\n%s", code, out)
	}
}

// TestRollout_Batches_InProcessSSH: --batch and --max-fail reach the plan
// and the rollout: a batch of one that fails is 100% > 50%, so the run
// stops there.
func TestRollout_Batches_InProcessSSH(t *testing.T) {
	f := startInProcessFleet(t, 3, "")
	f.setMode(t, 0, "crash")
	code, out, _, _ := cliRun(t.Context(), t, append(withoutCanary(f.args), "apply", "--json", "--batch", "1",
		"--max-failures", "10", "--max-fail", "50%", sampleContainer)...)
	hosts, sum := decodeRecords(t, out)
	if code != ExitStopped || classes(hosts) != "host01=agent_error host02=not_attempted host03=not_attempted" ||
		!strings.Contains(sum.Stopped, "more than --max-fail 50%") || hosts[1].Wave != 2 {
		t.Errorf("exit %d, %s, %+v", code, classes(hosts), sum)
	}
}

// TestRollout_AutoRevert_InProcessSSH: the canary gate stops the rollout
// and --auto-revert reverts the canary hosts that ran the agent.
func TestRollout_AutoRevert_InProcessSSH(t *testing.T) {
	f := startInProcessFleet(t, 3, "")
	f.setMode(t, 1, "error")
	args := append(withoutCanary(f.args)[:len(withoutCanary(f.args))-2], "--canary", "2")
	code, out, _, _ := cliRun(t.Context(), t, append(args, "apply", "--auto-revert", sampleContainer)...)
	for _, want := range []string{"stopped: canary gate", "auto-revert of the canary hosts:",
		"host01  all   success", "host02  all   patch_failed", "revert: 2 hosts: 1 ok", "RESULT        REVERTED",
		"processes: 1 reverted, 2 skipped, 1 failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if code != ExitStopped {
		t.Errorf("exit %d, want %d", code, ExitStopped)
	}
	// host01's patch is gone again; host03 was never touched.
	if b, _ := os.ReadFile(filepath.Join(f.staging[0], "ledger")); strings.TrimSpace(string(b)) != "" {
		t.Errorf("host01 ledger after auto-revert: %q", b)
	}
	if ents, _ := os.ReadDir(f.staging[2]); len(ents) != 0 {
		t.Errorf("host03 was touched")
	}
}

func TestRollout_HealthCheck_InProcessSSH(t *testing.T) {
	f := startInProcessFleet(t, 2, "")
	code, out, _, _ := cliRun(t.Context(), t, append(append([]string{"apply", "--json"}, f.args...), "--health-check", "exit 0", sampleContainer)...)
	if hosts, _ := decodeRecords(t, out); code != 0 || classes(hosts) != "host01=success host02=success" {
		t.Errorf("passing check: exit %d, %s", code, classes(hosts))
	}
	code, out, _, _ = cliRun(t.Context(), t, append(append([]string{"apply", "--json"}, f.args...), "--health-check", "echo down >&2; exit 3", sampleContainer)...)
	hosts, _ := decodeRecords(t, out)
	if code != ExitStopped || classes(hosts) != "host01=health_failed host02=not_attempted" || !strings.Contains(hosts[0].Error, "down") {
		t.Errorf("failing check: exit %d, %s, %q", code, classes(hosts), hosts[0].Error)
	}
}

// TestRollout_HostLock_InProcessSSH: two rollouts at once on one host take
// turns: the triggers never overlap.
func TestRollout_HostLock_InProcessSSH(t *testing.T) {
	f := startInProcessFleet(t, 1, "")
	f.setMode(t, 0, "pause")
	codes := make(chan int, 2)
	for range 2 {
		// Each run keeps its own results: two runs never share a results
		// file (the second would be refused), only the host's lock.
		results := filepath.Join(t.TempDir(), "results.ndjson")
		go func() {
			code, _, _, _ := cliRun(t.Context(), t, append([]string{"apply", sampleContainer, "--results", results}, f.args...)...)
			codes <- code
		}()
	}
	for range 2 {
		if code := <-codes; code != 0 {
			t.Errorf("exit %d", code)
		}
	}
	b, _ := os.ReadFile(filepath.Join(f.staging[0], "trace"))
	if got := strings.Fields(string(b)); strings.Join(got, " ") != "start end start end" {
		t.Errorf("triggers overlapped: %q", got)
	}
}

// TestAcceptNewHostKeys_InProcessSSH: an unknown host is refused, then
// trusted on first use with --accept-new-host-keys (its key recorded), then
// known.
func TestAcceptNewHostKeys_InProcessSSH(t *testing.T) {
	s := remotetest.NewServer(t)
	_, port, _ := net.SplitHostPort(s.Addr)
	inv := writeInventory(t, fmt.Sprintf("all:\n  hosts:\n    newhost: {ansible_host: 127.0.0.1, ansible_port: %s, ulp_staging_dir: %s}\n", port, t.TempDir()))
	known := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(known, nil, 0o600)
	args := []string{"ping", "--json", "-i", inv, "--known-hosts", known, "--identity", s.Identity, "--agent", fakeAgent(t)}
	class := func(extra ...string) string {
		_, out, _, _ := cliRun(t.Context(), t, append(args, extra...)...)
		var r pingRecord
		json.Unmarshal([]byte(out), &r)
		return r.Class
	}
	if c := class(); c != "host_key_unknown" {
		t.Errorf("strict: %s", c)
	}
	if c := class("--accept-new-host-keys"); c != "success" {
		t.Errorf("accept-new: %s", c)
	}
	if b, _ := os.ReadFile(known); !strings.HasPrefix(string(b), "[127.0.0.1]:"+port+" ") {
		t.Errorf("known_hosts after accept-new: %q", b)
	}
	if c := class(); c != "success" {
		t.Errorf("strict, once known: %s", c)
	}
}

// TestRetry: every rollout saves its results under $XDG_STATE_HOME; retry
// reruns the same action with the same containers on the hosts that did
// not succeed, and saves its own results.
func TestRetry(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	f := startInProcessFleet(t, 3, "")
	f.setMode(t, 2, "crash")
	fix := filepath.Join(t.TempDir(), "fix.so")
	data, err := os.ReadFile(sampleContainer)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fix, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, _, _ := cliRun(t.Context(), t, append([]string{"apply", "--max-failures", "5", fix}, f.args...)...); code != ExitFailure {
		t.Fatalf("exit %d", code)
	}
	if _, err := os.Stat(filepath.Join(os.Getenv("XDG_STATE_HOME"), "ulpfleet", "last-run.ndjson")); err != nil {
		t.Fatal(err)
	}
	// A changed container is refused.
	if err := os.WriteFile(fix, append(slices.Clone(data), 0), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr, _ := cliRun(t.Context(), t, append([]string{"retry"}, withoutCanary(f.args)...)...)
	if code != ExitUsage || !strings.Contains(stderr, "changed since the run") {
		t.Errorf("retry with a changed container: exit %d, %s", code, stderr)
	}
	if err := os.WriteFile(fix, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f.setMode(t, 2, "ok")
	code, out, _, _ := cliRun(t.Context(), t, append([]string{"retry", "--json"}, withoutCanary(f.args)...)...)
	hosts, sum := decodeRecords(t, out)
	if code != 0 || classes(hosts) != "host03=success" || sum.Action != "apply" || sum.Patched != 1 {
		t.Errorf("retry: exit %d, %s, %+v", code, classes(hosts), sum)
	}
	code, out, _, _ = cliRun(t.Context(), t, append([]string{"retry"}, withoutCanary(f.args)...)...)
	if code != 0 || !strings.Contains(out, "all 1 hosts of the last apply succeeded") {
		t.Errorf("second retry: exit %d\n%s", code, out)
	}
	for _, tt := range []struct {
		args []string
		err  string
	}{
		{[]string{"retry", "--results", ""}, "no --results file"},
		{[]string{"retry", "--results", filepath.Join(t.TempDir(), "none")}, "no such file"},
		{[]string{"apply", "-l", "@" + filepath.Join(os.Getenv("XDG_STATE_HOME"), "ulpfleet", "last-run.ndjson"), fix}, "a results file, not a host list"},
	} {
		if code, _, stderr, _ := cliRun(t.Context(), t, append(tt.args, f.args...)...); code != ExitUsage || !strings.Contains(stderr, tt.err) {
			t.Errorf("%v: exit %d, %s; want 2, %q", tt.args, code, stderr, tt.err)
		}
	}
}

func TestReadResults(t *testing.T) {
	dir := t.TempDir()
	run := func(action string, hosts ...string) string {
		b, _ := json.Marshal(runRecord{Schema: runSchema, Type: "run", RunID: "r1", Action: action, Inventory: "/inv.yaml", Hosts: hosts,
			Containers: []fleet.Artifact{{Name: "f.so", SHA256: "ab", Source: "/x/f.so"}}, RevertAll: "libc.so.6"})
		return string(b) + "\n"
	}
	host := func(name, state string) string {
		return `{"schema":"ulpfleet.host/v1","type":"host","host":"` + name + `","state":"` + state + `"}` + "\n"
	}
	sum := `{"schema":"ulpfleet.summary/v1","type":"summary","action":"apply"}` + "\n"
	tests := []struct {
		name, body, retry, err string
		finished               bool
	}{
		{"ok", run("apply", "a", "b", "c", "d") + host("b", "failed") + host("a", "ok") + host("c", "not_attempted") + host("d", "error") + sum, "b,c,d", "", true},
		// A killed controller: hosts without a record are retried.
		{"killed", run("apply", "a", "b", "c") + host("b", "ok"), "a,c", "", false},
		{"killed before any host", run("push", "a", "b"), "a,b", "", false},
		{"revert", run("revert", "a") + host("a", "interrupted") + sum, "a", "", true},
		{"status", run("status", "a") + host("a", "failed"), "", "cannot be retried", false},
		{"no run record", host("a", "failed") + sum, "", "no run record first", false},
		{"two run records", run("apply", "a") + run("apply", "a"), "", "a second run record", false},
		{"host of another run", run("apply", "a") + host("z", "ok"), "", `host "z" is not a host of the run`, false},
		{"host planned twice", run("apply", "a", "a"), "", "planned twice", false},
		{"after the summary", run("apply", "a") + sum + host("a", "ok"), "", "after the summary", false},
		{"empty", "", "", "empty results file", false},
		{"garbage", "{bad\n", "", "line 1", false},
		{"other schema", `{"schema":"ulp.trigger/v1"}` + "\n", "", "no run record first", false},
		{"other schema later", run("apply", "a") + `{"schema":"ulp.trigger/v1"}` + "\n", "", "not a record", false},
	}
	for _, tt := range tests {
		p := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_"))
		os.WriteFile(p, []byte(tt.body), 0o644)
		lr, err := readResults(p)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: err %v, want %q", tt.name, err, tt.err)
			}
			continue
		}
		if err != nil || strings.Join(lr.Retry, ",") != tt.retry || lr.Finished != tt.finished {
			t.Errorf("%s: %+v, %v; want retry %s, finished %v", tt.name, lr, err, tt.retry, tt.finished)
			continue
		}
		if c := lr.Run.Containers; len(c) != 1 || c[0].Source != "/x/f.so" || lr.Run.RevertAll != "libc.so.6" || lr.Run.Inventory != "/inv.yaml" {
			t.Errorf("%s: %+v", tt.name, lr)
		}
	}
}

// TestResultsWriter: every record is on disk as soon as append returns, a
// second run refuses the file while the first holds it, and retry refuses
// to read it until the run is done.
func TestResultsWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "run.ndjson")
	w, err := createResults(path, runRecord{Schema: runSchema, Type: "run", RunID: "r1", Action: "apply", Hosts: []string{"a", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.append(hostRecord{Schema: hostSchema, Type: "host", Host: "a", State: fleet.StateOK}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || strings.Count(string(b), "\n") != 2 {
		t.Errorf("after one host: %q, %v", b, err)
	}
	if _, err := createResults(path, runRecord{}); err == nil || !strings.Contains(err.Error(), "another ulpfleet run in progress") {
		t.Errorf("second run on a file in use: %v", err)
	}
	if _, err := readResults(path); err == nil || !strings.Contains(err.Error(), "in progress") {
		t.Errorf("retry of a run in progress: %v", err)
	}
	// What a killed controller leaves: the run record and a's record.
	lr, err := parseResults(path, bytes.NewReader(b))
	if err != nil || strings.Join(lr.Retry, ",") != "b" || lr.Finished {
		t.Errorf("killed run: %+v, %v", lr, err)
	}
	w.f.Close()
	if lr, err := readResults(path); err != nil || strings.Join(lr.Retry, ",") != "b" {
		t.Errorf("after the run: %+v, %v", lr, err)
	}
}

func FuzzReadResults(f *testing.F) {
	f.Add([]byte(`{"schema":"ulpfleet.run/v1","type":"run","run_id":"r","action":"apply","hosts":["a","b"],"containers":[]}` + "\n" +
		`{"schema":"ulpfleet.host/v1","type":"host","host":"a","state":"ok"}` + "\n" +
		`{"schema":"ulpfleet.summary/v1","type":"summary","action":"apply"}` + "\n"))
	for _, name := range []string{"result.json.golden"} {
		if b, err := os.ReadFile(filepath.Join("testdata", name)); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		lr, err := parseResults("results", bytes.NewReader(data))
		if (err == nil) == (lr == nil) {
			t.Fatalf("parseResults = %v, %v", lr, err)
		}
		if err == nil && len(lr.Retry) > len(lr.Run.Hosts) {
			t.Fatalf("%d hosts to retry of %d planned", len(lr.Retry), len(lr.Run.Hosts))
		}
	})
}

func TestLimitFromFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o644)
		return p
	}
	tests := []struct {
		body, want, err string
	}{
		{"# retry\nweb01\n\ndb*\n", "web01,db*", ""},
		{`{"schema":"ulpfleet.host/v1","type":"host","host":"a","state":"ok"}`, "", "a results file, not a host list"},
		{"", "", "lists no host"},
	}
	for i, tt := range tests {
		got, err := limitFromFile(write(fmt.Sprint(i), tt.body))
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%d: err %v, want %q", i, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%d: %q, %v; want %q", i, got, err, tt.want)
		}
	}
	if _, err := limitFromFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file: no error")
	}
}

func TestRollout_Cancel_InProcessSSH(t *testing.T) {
	f := startInProcessFleet(t, 3, "")
	f.setMode(t, 1, "slow")
	f.setMode(t, 2, "slow")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		// Cancel once both slow hosts have uploaded their container (their
		// trigger is then running).
		for ctx.Err() == nil {
			a, _ := filepath.Glob(filepath.Join(f.staging[1], "patches", "*", "sample.so"))
			b, _ := filepath.Glob(filepath.Join(f.staging[2], "patches", "*", "sample.so"))
			if len(a) > 0 && len(b) > 0 {
				time.Sleep(200 * time.Millisecond)
				cancel()
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	start := time.Now()
	code, out, _, _ := cliRun(ctx, t, append([]string{"apply", "--json", "--parallel", "2", sampleContainer}, f.args...)...)
	hosts, sum := decodeRecords(t, out)
	if code != ExitCancelled || !sum.Cancelled || classes(hosts) != "host01=success host02=interrupted host03=interrupted" {
		t.Errorf("exit %d, %s, %+v", code, classes(hosts), sum)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("cancel took %v: the slow agents were not stopped", d)
	}
}

// buildUlpfleet builds this package's ulpfleet (without an embedded agent)
// and returns its path.
func buildUlpfleet(t *testing.T) string {
	bin := filepath.Join(t.TempDir(), "ulpfleet")
	build := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "ulp/cmd/ulpfleet")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestRun_SIGINT: the real binary, interrupted while its hosts are in
// flight, cancels them and exits 130 with every host accounted for.
func TestRun_SIGINT(t *testing.T) {
	bin := buildUlpfleet(t)
	f := startInProcessFleet(t, 3, "")
	f.setMode(t, 0, "slow")
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(t.Context(), bin, append([]string{"apply", "--json", sampleContainer}, f.args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// Interrupt once the canary's trigger runs (its container is there).
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m, _ := filepath.Glob(filepath.Join(f.staging[0], "patches", "*", "sample.so")); len(m) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the canary never got its container\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != ExitCancelled {
		t.Fatalf("exit: %v, want status %d\n%s", err, ExitCancelled, stderr.String())
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("exiting took %v", d)
	}
	hosts, sum := decodeRecords(t, stdout.String())
	if classes(hosts) != "host01=interrupted host02=not_attempted host03=not_attempted" || !sum.Cancelled {
		t.Errorf("%s, %+v", classes(hosts), sum)
	}
}

// TestJump_InProcessSSH: --jump reaches every host through one jump host
// (a direct-tcpip hop per host); a jump host that is down makes every host
// unreachable, saying so.
func TestJump_InProcessSSH(t *testing.T) {
	f := startInProcessFleet(t, 3, "")
	jump := f.servers[0].Addr
	args := append(withoutCanary(f.args), "--jump", "root@"+jump)
	code, out, _, _ := cliRun(t.Context(), t, append([]string{"plan", sampleContainer}, args...)...)
	if code != 0 || strings.Count(out, "  via root@"+jump+"\n") != 3 || !regexp.MustCompile(`container sample.so sha256:[0-9a-f]{16} \d+ bytes, patch id [0-9a-f]{16}\n`).MatchString(out) {
		t.Errorf("plan: exit %d\n%s", code, out)
	}
	code, out, _, _ = cliRun(t.Context(), t, append([]string{"apply", "--json", sampleContainer}, args...)...)
	if hosts, _ := decodeRecords(t, out); code != 0 || classes(hosts) != "host01=success host02=success host03=success" {
		t.Errorf("apply via jump: exit %d, %s", code, classes(hosts))
	}
	if n := f.servers[0].Forwards.Load(); n != 3 {
		t.Errorf("%d hops through the jump host, want 3", n)
	}
	down := remotetest.Refused(t)
	code, out, _, _ = cliRun(t.Context(), t, append([]string{"apply", "--json", "--max-failures", "5", sampleContainer},
		append(withoutCanary(f.args), "--jump", down)...)...)
	hosts, _ := decodeRecords(t, out)
	if code != ExitFailure || classes(hosts) != "host01=unreachable host02=unreachable host03=unreachable" ||
		!strings.Contains(hosts[0].Error, "jump host "+down) {
		t.Errorf("jump host down: exit %d, %s, %+v", code, classes(hosts), hosts)
	}
	if code, _, stderr, _ := cliRun(t.Context(), t, append([]string{"plan", sampleContainer}, append(f.args, "--jump", "a@")...)...); code != ExitUsage || !strings.Contains(stderr, "--jump") {
		t.Errorf("bad --jump: exit %d, %s", code, stderr)
	}
}

// TestVersion_MakeBuild: the ulpfleet that make builds names its git
// revision in 12 hex digits (unknown outside a git checkout) and its agent
// in 16, as the agent's copy on hosts is named.
func TestVersion_MakeBuild(t *testing.T) {
	bin := testenv.Artifact(t, "ulpfleet")
	out, err := exec.CommandContext(t.Context(), bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("ulpfleet version: %v\n%s", err, out)
	}
	rev := `unknown`
	if exec.Command("git", "rev-parse", "HEAD").Run() == nil {
		rev = `[0-9a-f]{12}`
	}
	want := regexp.MustCompile(`^ulpfleet: revision ` + rev + `, go1\.\S+\nagent: sha256:[0-9a-f]{16}, sha256 [0-9a-f]{64}, \d+ bytes, go1\.\S+\n$`)
	if !want.Match(out) {
		t.Errorf("ulpfleet version:\n%s\nwant %s", out, want)
	}
}

// TestResults_Busy: while another run writes the default results file, a
// run saves its own next to it and says where; a --results file in use is
// refused before any host is touched.
func TestResults_Busy(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	f := startInProcessFleet(t, 1, "")
	other, err := createResults(defaultResults(), runRecord{Schema: runSchema, Type: "run", RunID: "other", Action: "apply", Hosts: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	defer other.f.Close()
	code, _, stderr, _ := cliRun(t.Context(), t, append([]string{"push", sampleContainer}, f.args...)...)
	alt, _ := filepath.Glob(strings.TrimSuffix(defaultResults(), ".ndjson") + "-*.ndjson")
	if code != 0 || len(alt) != 1 || !strings.Contains(stderr, alt[0]) {
		t.Fatalf("push while the default file is busy: exit %d, files %v\n%s", code, alt, stderr)
	}
	if lr, err := readResults(alt[0]); err != nil || !lr.Finished || len(lr.Run.Hosts) != 1 {
		t.Errorf("the run's own results: %+v, %v", lr, err)
	}
	code, _, stderr, _ = cliRun(t.Context(), t, append([]string{"push", "--results", defaultResults(), sampleContainer}, f.args...)...)
	if code != ExitUsage || !strings.Contains(stderr, "in progress") {
		t.Errorf("push to a --results file in use: exit %d\n%s", code, stderr)
	}
}
