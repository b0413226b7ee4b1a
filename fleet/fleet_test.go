package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"ulp/inventory"
	"ulp/remote"
)

var update = flag.Bool("update", false, "rewrite golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if d := cmp.Diff(string(want), string(got)); d != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", name, d)
	}
}

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// reportFile returns a file of the agent's output kept with the decoders,
// in livepatch/report/testdata.
func reportFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "livepatch", "report", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var (
	testAgent = NewArtifact("ulp", []byte("agent binary"))
	testFix   = NewArtifact("fix.so", []byte("container one"))
	testFix2  = NewArtifact("fix2.so", []byte("container two"))
)

func hosts(names ...string) []inventory.Host {
	out := make([]inventory.Host, len(names))
	for i, n := range names {
		g := []string{"all"}
		if strings.HasPrefix(n, "c") {
			g = append(g, "canary")
		}
		out[i] = inventory.Host{Name: n, Addr: n, Port: 22, Groups: g, Vars: map[string]any{}}
	}
	return out
}

func TestPlan_Golden(t *testing.T) {
	inv, err := inventory.Load("../inventory/testdata/prod.yaml")
	if err != nil {
		t.Fatal(err)
	}
	hs, err := inv.Select("web:db")
	if err != nil {
		t.Fatal(err)
	}
	hs[2].Vars = map[string]any{StagingVar: "/opt/ulp"}
	hs[3].Vars = map[string]any{JumpVar: "ops@bastion2.example.com:2200"}
	hs[4].Vars = map[string]any{JumpVar: "none"}
	tests := []struct {
		name string
		opts Options
	}{
		{"apply", Options{Action: Apply, Agent: testAgent, Containers: []Artifact{testFix, testFix2}, Canary: []string{"group:canary", "1"}}},
		{"replace", Options{Action: Apply, Agent: testAgent, Containers: []Artifact{testFix}, RevertAll: "libcrypto.so.3", Canary: []string{"50%"}, Sudo: true, Activate: true}},
		{"revert", Options{Action: Revert, Agent: testAgent, Containers: []Artifact{testFix, testFix2}, RevertAll: "libssl.so.3", Activate: true}},
		{"status", Options{Action: Status, Agent: testAgent, StagingDir: "/srv/ulp", Jump: "bastion.example.com"}},
		{"messages", Options{Action: Messages, Agent: testAgent}},
		{"ping", Options{Action: Ping, Agent: testAgent}},
		{"push", Options{Action: Push, Agent: testAgent, Containers: []Artifact{testFix}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPlan(hs, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			if err := p.WriteText(&b); err != nil {
				t.Fatal(err)
			}
			golden(t, "plan-"+tt.name+".golden", []byte(b.String()))
		})
	}
}

func TestPlan_Waves(t *testing.T) {
	hs := hosts("c1", "a1", "a2", "c2", "a3", "a4", "a5", "a6", "a7", "a8")
	tests := []struct {
		canary []string
		want   string // waves as "name:hosts|..."
		err    string
	}{
		{nil, "all:c1,a1,a2,c2,a3,a4,a5,a6,a7,a8", ""},
		{[]string{"0"}, "all:c1,a1,a2,c2,a3,a4,a5,a6,a7,a8", ""},
		{[]string{"1"}, "canary 1:c1|rest:a1,a2,c2,a3,a4,a5,a6,a7,a8", ""},
		{[]string{"group:canary"}, "canary 1:c1,c2|rest:a1,a2,a3,a4,a5,a6,a7,a8", ""},
		{[]string{"1", "25%"}, "canary 1:c1|canary 2:a1,a2|rest:c2,a3,a4,a5,a6,a7,a8", ""},
		{[]string{"5%"}, "canary 1:c1|rest:a1,a2,c2,a3,a4,a5,a6,a7,a8", ""}, // truncated, at least 1
		{[]string{"100%"}, "canary 1:c1,a1,a2,c2,a3,a4,a5,a6,a7,a8", ""},
		{[]string{"20"}, "canary 1:c1,a1,a2,c2,a3,a4,a5,a6,a7,a8", ""},
		{[]string{"group:nope"}, "", `no remaining host is in group "nope"`},
		{[]string{"x"}, "", "want a host count"},
		{[]string{"0%"}, "", "percentage"},
		{[]string{"-1"}, "", "want a host count"},
	}
	for _, tt := range tests {
		p, err := NewPlan(hs, Options{Action: Apply, Agent: testAgent, Containers: []Artifact{testFix}, Canary: tt.canary})
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.Is(err, ErrPlan) {
				t.Errorf("canary %q: err = %v, want %q", tt.canary, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("canary %q: %v", tt.canary, err)
			continue
		}
		var ws []string
		for _, w := range p.Waves {
			var ns []string
			for _, h := range w.Hosts {
				ns = append(ns, h.Host.Name)
			}
			ws = append(ws, w.Name+":"+strings.Join(ns, ","))
		}
		if got := strings.Join(ws, "|"); got != tt.want {
			t.Errorf("canary %q: waves %s, want %s", tt.canary, got, tt.want)
		}
	}
}

// TestPlan_Batches: Ansible's serial: counts and percentages of all hosts
// (truncated, at least 1), the last size repeating, after the canaries.
func TestPlan_Batches(t *testing.T) {
	var names []string
	for i := range 23 {
		names = append(names, fmt.Sprintf("a%02d", i))
	}
	tests := []struct {
		canary, batch []string
		want          string // wave sizes
		err           string
	}{
		{nil, []string{"1", "5", "20%"}, "batch 1:1 batch 2:5 batch 3:4 batch 4:4 batch 5:4 batch 6:4 batch 7:1", ""},
		{[]string{"1"}, []string{"30%"}, "canary 1:1 batch 1:6 batch 2:6 batch 3:6 batch 4:4", ""},
		{nil, []string{"50"}, "batch 1:23", ""},
		{nil, []string{"1%"}, "batch 1:1 batch 2:1 batch 3:1 batch 4:1 batch 5:1 batch 6:1 batch 7:1 batch 8:1 batch 9:1 batch 10:1 batch 11:1 batch 12:1 batch 13:1 batch 14:1 batch 15:1 batch 16:1 batch 17:1 batch 18:1 batch 19:1 batch 20:1 batch 21:1 batch 22:1 batch 23:1", ""},
		{nil, []string{"0"}, "", `batch "0"`},
		{nil, []string{"x"}, "", `batch "x"`},
		{nil, []string{"group:a"}, "", "want a host count or a percentage"},
	}
	for _, tt := range tests {
		p, err := NewPlan(hosts(names...), Options{Action: Apply, Agent: testAgent, Containers: []Artifact{testFix}, Canary: tt.canary, Batch: tt.batch})
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("batch %q: err %v, want %q", tt.batch, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, w := range p.Waves {
			got = append(got, fmt.Sprintf("%s:%d", w.Name, len(w.Hosts)))
		}
		if g := strings.Join(got, " "); g != tt.want {
			t.Errorf("canary %q batch %q: %s, want %s", tt.canary, tt.batch, g, tt.want)
		}
	}
}

// TestRun_MaxFailPercent: 12 hosts in batches of 4 with --max-fail 25%:
// 1 of 4 failed is not more than 25%, 2 of 4 is (Ansible's "exceeded").
func TestRun_MaxFailPercent(t *testing.T) {
	var names []string
	for i := range 12 {
		names = append(names, fmt.Sprintf("a%02d", i))
	}
	unreach := fmt.Errorf("%w: refused", remote.ErrUnreachable)
	for _, tt := range []struct {
		failing  []string
		attempts int
		stopped  bool
	}{
		{[]string{"a01"}, 12, false},
		{[]string{"a01", "a05", "a09"}, 12, false},
		{[]string{"a01", "a02"}, 4, true},
		{[]string{"a01", "a05", "a06"}, 8, true},
	} {
		d := newFake()
		for _, n := range tt.failing {
			d.hosts[n] = &fakeHost{dialErr: unreach}
		}
		p, err := NewPlan(hosts(names...), Options{Action: Apply, Agent: testAgent, Containers: []Artifact{testFix}, Batch: []string{"4"}})
		if err != nil {
			t.Fatal(err)
		}
		r := &Rollout{Dialer: d, Parallel: 4, MaxFailures: 100, MaxFailPercent: 25}
		res, err := r.Run(t.Context(), p)
		if got := 12 - res.Counts()[StateNotAttempted]; got != tt.attempts || errors.Is(err, ErrStopped) != tt.stopped {
			t.Errorf("failing %v: %d hosts attempted, stopped %v (%q); want %d, %v", tt.failing, got, errors.Is(err, ErrStopped), res.Stopped, tt.attempts, tt.stopped)
		}
	}
}

func TestPlan_Errors(t *testing.T) {
	hs := hosts("a")
	bad := hosts("b")
	bad[0].Vars = map[string]any{StagingVar: "relative/dir"}
	tests := []struct {
		name  string
		hosts []inventory.Host
		opts  Options
		want  []string
	}{
		{"nothing", hs, Options{Action: Apply, Agent: testAgent}, []string{"at least one container"}},
		{"no hosts", nil, Options{Action: Apply, Agent: testAgent, Containers: []Artifact{testFix}}, []string{"no hosts"}},
		{"no agent", hs, Options{Action: Apply, Containers: []Artifact{testFix}}, []string{"no agent"}},
		{"bad action", hs, Options{Action: "nuke", Agent: testAgent}, []string{"unknown action"}},
		{"dup", hs, Options{Action: Apply, Agent: testAgent, Containers: []Artifact{testFix, testFix}}, []string{"given twice"}},
		{"bad name", hs, Options{Action: Apply, Agent: testAgent, Containers: []Artifact{NewArtifact("../x", nil)}}, []string{"plain file name"}},
		{"bad lib", hs, Options{Action: Revert, Agent: testAgent, RevertAll: "a/b"}, []string{"not a library"}},
		{"status args", hs, Options{Action: Status, Agent: testAgent, Containers: []Artifact{testFix}}, []string{"no containers"}},
		{"staging", bad, Options{Action: Status, Agent: testAgent}, []string{`host b: staging folder "relative/dir"`}},
		{"bad sha", hs, Options{Action: Status, Agent: Artifact{Name: "ulp", SHA256: "zz"}}, []string{"64 hex"}},
		{"all at once", nil, Options{Action: Apply}, []string{"at least one container", "no hosts", "no agent"}},
	}
	for _, tt := range tests {
		_, err := NewPlan(tt.hosts, tt.opts)
		for _, w := range tt.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: err = %v, want %q", tt.name, err, w)
			}
		}
	}
}

func TestParseJump(t *testing.T) {
	tests := []struct{ spec, user, addr, err string }{
		{"bastion", "", "bastion:22", ""},
		{"ops@bastion:2200", "ops", "bastion:2200", ""},
		{"a@b@bastion", "", "", "bad user"},
		{"[::1]:22", "", "[::1]:22", ""},
		{"bastion:0", "", "", "bad port"},
		{"bastion:x", "", "", "bad port"},
		{"@bastion", "", "", "bad user"},
		{"", "", "", "want [USER@]HOST[:PORT]"},
		{"bas tion", "", "", "want [USER@]HOST[:PORT]"},
	}
	for _, tt := range tests {
		user, addr, err := ParseJump(tt.spec)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseJump(%q) err = %v, want %q", tt.spec, err, tt.err)
			}
			continue
		}
		if err != nil || user != tt.user || addr != tt.addr {
			t.Errorf("ParseJump(%q) = %q, %q, %v; want %q, %q", tt.spec, user, addr, err, tt.user, tt.addr)
		}
	}
	if _, err := NewPlan(hosts("a"), Options{Action: Status, Agent: testAgent, Jump: "x:99999"}); !errors.Is(err, ErrPlan) {
		t.Errorf("plan with a bad jump host: %v", err)
	}
}

// fakeHost scripts one host of the fake fleet.
type fakeHost struct {
	dialErr    error
	uploadErr  error
	triggerOut string // stdout of trigger
	exitCode   int    // of trigger
	block      bool   // trigger blocks until ctx ends
	unhealthy  bool   // the health check fails
	patchesOut string
}

// fakeDialer is an in-memory fleet that records concurrency.
type fakeDialer struct {
	hosts          map[string]*fakeHost
	active, maxAct atomic.Int64
	uploads, maxUp atomic.Int64
	started        chan string
	mu             sync.Mutex
	runs           map[string][][]string
}

func newFake() *fakeDialer {
	return &fakeDialer{hosts: map[string]*fakeHost{}, runs: map[string][][]string{}, started: make(chan string, 1000)}
}

func (d *fakeDialer) Dial(ctx context.Context, hp *HostPlan) (Conn, error) {
	h := hp.Host
	fh := d.hosts[h.Name]
	if fh == nil {
		fh = &fakeHost{triggerOut: string(okOut)}
	}
	if fh.dialErr != nil {
		return nil, fh.dialErr
	}
	n := d.active.Add(1)
	for {
		m := d.maxAct.Load()
		if n <= m || d.maxAct.CompareAndSwap(m, n) {
			break
		}
	}
	d.started <- h.Name
	return &fakeConn{d: d, name: h.Name, h: fh}, nil
}

type fakeConn struct {
	d    *fakeDialer
	name string
	h    *fakeHost
}

var okOut = []byte(`{"schema":"ulp.trigger/v1","type":"process","pid":1,"result":"SUCCESS"}
{"schema":"ulp.trigger/v1","type":"process","pid":2,"result":"SKIPPED"}
{"schema":"ulp.trigger/v1","type":"summary","candidates":2,"patched":1,"skipped":1}
`)

func (c *fakeConn) Run(ctx context.Context, argv []string, _ io.Reader) (remote.Result, error) {
	c.d.mu.Lock()
	c.d.runs[c.name] = append(c.d.runs[c.name], argv)
	c.d.mu.Unlock()
	cmd := argv[0]
	switch {
	case slices.Contains(argv, "trigger"):
		cmd = "trigger"
		if argv[0] != "flock" || argv[5] != "/var/lib/ulp/lock" {
			return remote.Result{}, fmt.Errorf("trigger without the host lock: %q", argv)
		}
	case slices.Contains(argv, "patches"):
		cmd = "patches"
	case argv[0] == "sh" && c.h.unhealthy:
		return remote.Result{ExitCode: 1}, &remote.ExitError{Argv: argv, Code: 1}
	}
	switch cmd {
	case "trigger":
		if c.h.block {
			<-ctx.Done()
			return remote.Result{ExitCode: -1}, ctx.Err()
		}
		res := remote.Result{Stdout: []byte(c.h.triggerOut), ExitCode: c.h.exitCode}
		if c.h.exitCode != 0 {
			return res, &remote.ExitError{Argv: argv, Code: c.h.exitCode}
		}
		return res, nil
	case "patches":
		return remote.Result{Stdout: []byte(c.h.patchesOut)}, nil
	}
	return remote.Result{}, nil
}

func (c *fakeConn) Upload(ctx context.Context, data []byte, dst string, mode fs.FileMode) (remote.Uploaded, error) {
	n := c.d.uploads.Add(1)
	defer c.d.uploads.Add(-1)
	for {
		m := c.d.maxUp.Load()
		if n <= m || c.d.maxUp.CompareAndSwap(m, n) {
			break
		}
	}
	time.Sleep(time.Millisecond) // let uploads overlap so the limit is exercised
	if c.h.uploadErr != nil {
		return remote.Uploaded{}, c.h.uploadErr
	}
	if strings.Contains(dst, "/bin/ulp-") && mode != 0o755 {
		return remote.Uploaded{}, fmt.Errorf("agent mode %v", mode)
	}
	return remote.Uploaded{Path: dst, Skipped: strings.HasSuffix(dst, ".so") && c.name == "a1"}, nil
}

func (c *fakeConn) Close() error { c.d.active.Add(-1); return nil }

func testLog(t *testing.T) *slog.Logger { return slog.New(slog.NewTextHandler(t.Output(), nil)) }

func plan(t *testing.T, names []string, canary ...string) *Plan {
	t.Helper()
	p, err := NewPlan(hosts(names...), Options{Action: Apply, Agent: testAgent, Containers: []Artifact{testFix, testFix2}, Canary: canary})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func states(res *Result) string {
	var s []string
	for _, h := range res.Hosts {
		s = append(s, h.Host+"="+string(h.State))
	}
	return strings.Join(s, " ")
}

func TestRun_AllHosts(t *testing.T) {
	var names []string
	for i := range 40 {
		names = append(names, fmt.Sprintf("a%d", i))
	}
	d := newFake()
	r := &Rollout{Dialer: d, Parallel: 5, UploadParallel: 2, Log: testLog(t)}
	res, err := r.Run(t.Context(), plan(t, names, "2"))
	if err != nil {
		t.Fatal(err)
	}
	if c := res.Counts(); c[StateOK] != 40 {
		t.Fatalf("counts %v", c)
	}
	if m := d.maxAct.Load(); m > 5 {
		t.Errorf("%d hosts at once, limit 5", m)
	}
	if m := d.maxUp.Load(); m > 2 {
		t.Errorf("%d uploads at once, limit 2", m)
	}
	h := res.Hosts[3]
	// okOut per trigger: pid 1 SUCCESS, pid 2 SKIPPED; two triggers, and
	// the counts are of distinct processes.
	if h.Patched != 1 || h.Skipped != 1 || h.Failed != 0 || len(h.Processes) != 4 || h.Uploaded != 3 {
		t.Errorf("host result %+v", h)
	}
	if a1 := res.Hosts[1]; a1.Unchanged != 2 || a1.Uploaded != 1 {
		t.Errorf("a1 uploads %d/%d, want 1 sent 2 unchanged", a1.Uploaded, a1.Unchanged)
	}
	// The plan's steps are what ran, in order.
	runs := d.runs["a7"]
	want := [][]string{res0(plan(t, names, "2"), 7, 3), res0(plan(t, names, "2"), 7, 4)}
	if d := cmp.Diff(want, runs); d != "" {
		t.Errorf("commands on a7 (-plan +ran):\n%s", d)
	}
}

// res0 returns the argv of step s of host i of the plan.
func res0(p *Plan, i, s int) []string {
	for _, w := range p.Waves {
		if i < len(w.Hosts) {
			return w.Hosts[i].Steps[s].Argv
		}
		i -= len(w.Hosts)
	}
	return nil
}

func TestRun_Gate(t *testing.T) {
	errOut := string(reportFile(t, "trigger-error.ndjson"))
	unreach := fmt.Errorf("remote: dial: %w: refused", remote.ErrUnreachable)
	tests := []struct {
		name        string
		hosts       map[string]*fakeHost
		canary      []string
		maxFailures int
		want        string
		stopped     bool
	}{
		{"canary unreachable stops", map[string]*fakeHost{"c1": {dialErr: unreach}}, []string{"1"}, 0,
			"c1=failed a1=not_attempted a2=not_attempted a3=not_attempted", true},
		{"canary ERROR stops", map[string]*fakeHost{"c1": {triggerOut: errOut, exitCode: 1}}, []string{"1"}, 0,
			"c1=error a1=not_attempted a2=not_attempted a3=not_attempted", true},
		{"canary failure tolerated", map[string]*fakeHost{"c1": {dialErr: unreach}}, []string{"1"}, 1,
			"c1=failed a1=ok a2=ok a3=ok", false},
		{"threshold exceeded, not reached", map[string]*fakeHost{"c1": {dialErr: unreach}, "a1": {dialErr: unreach}}, []string{"1"}, 1,
			"c1=failed a1=failed a2=not_attempted a3=not_attempted", true},
		{"last host fails: nothing stopped", map[string]*fakeHost{"a3": {dialErr: unreach}}, []string{"1"}, 0,
			"c1=ok a1=ok a2=ok a3=failed", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newFake()
			d.hosts = tt.hosts
			r := &Rollout{Dialer: d, Parallel: 1, MaxFailures: tt.maxFailures, Log: testLog(t)}
			res, err := r.Run(t.Context(), plan(t, []string{"c1", "a1", "a2", "a3"}, tt.canary...))
			if got := states(res); got != tt.want {
				t.Errorf("states %s, want %s", got, tt.want)
			}
			if errors.Is(err, ErrStopped) != tt.stopped || (res.Stopped != "") != tt.stopped {
				t.Errorf("err %v, stopped %q; want stopped %v", err, res.Stopped, tt.stopped)
			}
			if err == nil {
				t.Error("a failed host must give an error")
			}
			var he *HostError
			if !errors.As(err, &he) {
				t.Errorf("err %v has no *HostError", err)
			}
		})
	}
}

func TestRun_Classes(t *testing.T) {
	errOut := string(reportFile(t, "trigger-error.ndjson"))
	d := newFake()
	d.hosts = map[string]*fakeHost{
		"a1": {dialErr: fmt.Errorf("remote: dial: %w: refused", remote.ErrUnreachable)},
		"a2": {dialErr: fmt.Errorf("x: %w", remote.ErrHostKeyMismatch)},
		"a3": {dialErr: fmt.Errorf("x: %w", remote.ErrHostKeyUnknown)},
		"a4": {dialErr: fmt.Errorf("x: %w", remote.ErrAuth)},
		"a5": {uploadErr: fmt.Errorf("x: %w: disk full", remote.ErrUpload)},
		"a6": {triggerOut: "", exitCode: 2},
		"a7": {triggerOut: "garbage\n{\"schema\":1}\n"},
		"a8": {triggerOut: errOut, exitCode: 1},
		"a9": {triggerOut: strings.Replace(errOut, `"failed":1`, `"failed":1,"inconsistent":1`, 1), exitCode: 3},
		"b1": {triggerOut: string(okOut)},
		"b2": {exitCode: LockedExit},
	}
	r := &Rollout{Dialer: d, Parallel: 4, MaxFailures: 100, Log: testLog(t)}
	res, err := r.Run(t.Context(), plan(t, []string{"a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "b1", "b2"}))
	if err == nil {
		t.Fatal("no error")
	}
	var got []string
	for _, h := range res.Hosts {
		got = append(got, h.Host+"="+h.Class())
	}
	want := "a1=unreachable a2=host_key_changed a3=host_key_unknown a4=auth_failed a5=upload_failed a6=agent_error a7=agent_error a8=patch_failed a9=patch_failed b1=success b2=locked"
	if strings.Join(got, " ") != want {
		t.Errorf("classes\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	if res.Hosts[8].Inconsistent != 2 || !strings.Contains(res.Hosts[8].Err.Error(), "inconsistent") {
		t.Errorf("a9: %+v", res.Hosts[8])
	}
	if res.Hosts[4].Phase != "upload" || res.Hosts[0].Phase != "connect" {
		t.Errorf("phases %q %q", res.Hosts[4].Phase, res.Hosts[0].Phase)
	}
}

func TestRun_HealthCheck(t *testing.T) {
	d := newFake()
	d.hosts = map[string]*fakeHost{"c1": {triggerOut: string(okOut), unhealthy: true}}
	p, err := NewPlan(hosts("c1", "a1"), Options{Action: Apply, Agent: testAgent, Containers: []Artifact{testFix},
		Canary: []string{"1"}, HealthCheck: "curl -fs localhost/health"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := (&Rollout{Dialer: d}).Run(t.Context(), p)
	c1 := res.Hosts[0]
	if c1.Class() != "health_failed" || c1.Patched != 1 || !errors.Is(err, ErrStopped) || res.Hosts[1].State != StateNotAttempted {
		t.Errorf("c1 %s patched %d, err %v, %s", c1.Class(), c1.Patched, err, states(res))
	}
	if got := d.runs["c1"][1]; strings.Join(got, " ") != "sh -c curl -fs localhost/health" {
		t.Errorf("health check argv %q", got)
	}
}

func TestRun_Cancel(t *testing.T) {
	d := newFake()
	d.hosts = map[string]*fakeHost{"a3": {block: true}, "a4": {block: true}}
	r := &Rollout{Dialer: d, Parallel: 2, MaxFailures: 100, Log: testLog(t)}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		// Cancel once both blocking hosts are in flight.
		n := 0
		for name := range d.started {
			if name == "a3" || name == "a4" {
				if n++; n == 2 {
					cancel()
					return
				}
			}
		}
	}()
	res, err := r.Run(ctx, plan(t, []string{"a1", "a2", "a3", "a4", "a5", "a6"}))
	if !errors.Is(err, context.Canceled) || !res.Cancelled {
		t.Fatalf("err %v cancelled %v", err, res.Cancelled)
	}
	want := "a1=ok a2=ok a3=interrupted a4=interrupted a5=not_attempted a6=not_attempted"
	if got := states(res); got != want {
		t.Errorf("states %s, want %s", got, want)
	}
	if d.active.Load() != 0 {
		t.Errorf("%d connections left open", d.active.Load())
	}
}

func TestRun_HostTimeout(t *testing.T) {
	d := newFake()
	d.hosts = map[string]*fakeHost{"a1": {block: true}}
	r := &Rollout{Dialer: d, HostTimeout: 50 * time.Millisecond, MaxFailures: 5}
	res, _ := r.Run(t.Context(), plan(t, []string{"a1", "a2"}))
	if c := res.Hosts[0].Class(); c != "timeout" || res.Hosts[1].State != StateOK {
		t.Errorf("a1 class %s, %s", c, states(res))
	}
}

func TestParsePreflight(t *testing.T) {
	got := parsePreflight([]byte("banner\narch=x86_64\nmount_options=rw,noexec\n=x\nagent=present"))
	want := map[string]string{"arch": "x86_64", "mount_options": "rw,noexec", "agent": "present"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

func TestAggregate(t *testing.T) {
	d := newFake()
	pout := string(reportFile(t, "patches.ndjson"))
	d.hosts = map[string]*fakeHost{"a1": {patchesOut: pout}, "a2": {patchesOut: pout}, "a3": {patchesOut: ""},
		"a4": {dialErr: fmt.Errorf("%w: x", remote.ErrUnreachable)}}
	p, err := NewPlan(hosts("a1", "a2", "a3", "a4"), Options{Action: Status, Agent: testAgent})
	if err != nil {
		t.Fatal(err)
	}
	res, _ := (&Rollout{Dialer: d, MaxFailures: 10}).Run(t.Context(), p)
	rep := Aggregate(res)
	got, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "aggregate.golden", append(got, '\n'))
}

// jumpDialer records the jump host each host is dialled through.
type jumpDialer struct {
	*fakeDialer
	mu    sync.Mutex
	jumps map[string]string
}

func (d *jumpDialer) Dial(ctx context.Context, hp *HostPlan) (Conn, error) {
	d.mu.Lock()
	d.jumps[hp.Host.Name] = hp.Jump
	d.mu.Unlock()
	return d.fakeDialer.Dial(ctx, hp)
}

// TestRun_DialsThePlannedJump: each host is dialled through the jump host
// its plan shows (the default, its own ulp_jump, or none).
func TestRun_DialsThePlannedJump(t *testing.T) {
	hs := hosts("a", "b", "c")
	hs[1].Vars = map[string]any{JumpVar: "ops@other:2200"}
	hs[2].Vars = map[string]any{JumpVar: "none"}
	p, err := NewPlan(hs, Options{Action: Status, Agent: testAgent, Jump: "bastion"})
	if err != nil {
		t.Fatal(err)
	}
	d := &jumpDialer{fakeDialer: newFake(), jumps: map[string]string{}}
	r := &Rollout{Dialer: d, Parallel: 2, UploadParallel: 1, Log: testLog(t)}
	if _, err := r.Run(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	planned := map[string]string{}
	for _, w := range p.Waves {
		for _, hp := range w.Hosts {
			planned[hp.Host.Name] = hp.Jump
		}
	}
	want := map[string]string{"a": "bastion", "b": "ops@other:2200", "c": ""}
	if d := cmp.Diff(want, planned); d != "" {
		t.Errorf("planned jump hosts (-want +got):\n%s", d)
	}
	if d := cmp.Diff(planned, d.jumps); d != "" {
		t.Errorf("dialled jump hosts (-plan +dialled):\n%s", d)
	}
}

// TestRun_Locked: a trigger that waited in vain for the host lock fails
// with ErrLocked, naming the lock.
func TestRun_Locked(t *testing.T) {
	d := newFake()
	d.hosts["a"] = &fakeHost{exitCode: LockedExit}
	r := &Rollout{Dialer: d, Parallel: 1, UploadParallel: 1, Log: testLog(t)}
	res, _ := r.Run(t.Context(), plan(t, []string{"a"}))
	h := res.Hosts[0]
	if !errors.Is(h.Err, ErrLocked) || !strings.Contains(h.Err.Error(), "for /var/lib/ulp/lock:") {
		t.Errorf("host a: %s %v, want ErrLocked naming /var/lib/ulp/lock", h.State, h.Err)
	}
}
