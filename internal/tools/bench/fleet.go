package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
	"golang.org/x/sync/errgroup"

	"ulp/remote/remotetest/sshfleet"
)

// fleetSection rolls the benchmark's livepatch out with build/ulpfleet (and
// its embedded agent) to real sshd hosts (remote/remotetest/sshfleet), each
// running one preloaded target process, and measures:
//   - hosts per second of `ulpfleet apply` and `revert` at each fan-out, with
//     the agent and the container already on the hosts;
//   - OpenSSH's `ssh HOST true` over the same hosts at the same fan-outs;
//   - the bytes the controller sent (and received) on a first run to empty
//     hosts and on a second run with nothing changed, counted by a TCP relay
//     in front of every host.
func fleetSection(ctx context.Context, e *env) Section {
	s := Section{Title: fmt.Sprintf("ulpfleet over %d real sshd hosts, one preloaded process each", e.cfg.FleetHosts)}
	if _, err := os.Stat(e.fleet); err != nil {
		s.Status, s.Reason = StatusSkipped, fmt.Sprintf("no ulpfleet (%v): run make first", err)
		return s
	}
	if why := fleetMissing(); why != "" {
		s.Status, s.Reason = StatusSkipped, "the machine cannot run the sshd fleet: "+why
		return s
	}
	smp := newSamples()
	var runErr error
	skipped, err := sshfleet.Run(ctx, e.log, "fleet", func(tb testing.TB) {
		f := sshfleet.Start(tb, e.cfg.FleetHosts)
		fb := &fleetBench{env: e, fleet: f, smp: smp}
		runErr = fb.run(ctx, tb)
	})
	switch {
	case skipped:
		s.Status, s.Reason = StatusSkipped, "the machine cannot run the sshd fleet: "+err.Error()
		return s
	case err != nil:
		return failed(s, smp, err)
	case runErr != nil:
		return failed(s, smp, runErr)
	}
	s.Figures = smp.figures()
	s.Figures = withSSHAnchors(s.Figures)
	s.Notes = []string{
		"apply/revert: one `ulpfleet --canary 0 --parallel N --upload-parallel N apply|revert` over every host (connect, two uploads skipped by sha256, ulp trigger -p '*' on the host's process, close), wall time of the ulpfleet process",
		"cold: the first apply to hosts whose staging folder is empty (uploads the agent and the container), at the largest fan-out",
		"bytes: TCP payload bytes per host between ulpfleet and sshd (encrypted SSH), counted by a relay; second: an apply repeated with nothing changed",
		"ssh-true: OpenSSH's client, `ssh HOST true` (a new connection each time), over the same hosts at the same fan-out",
		"known-hosts=10000-plain|hashed: the apply with the hosts' lines spread among 10,000 lines of known_hosts, host names in clear or hashed (ssh-keygen -H)",
	}
	return s
}

// withSSHAnchors sets, as the anchor of every rollout figure at fan-out N
// (hosts per second, ms per host), the same figure of `ssh HOST true` at
// fan-out N from the same run.
func withSSHAnchors(figs []Figure) []Figure {
	ssh := map[string]float64{}
	for _, f := range figs {
		if rest, ok := strings.CutPrefix(f.Name, "ssh-true."); ok {
			ssh[rest] = f.Median
		}
	}
	for i, f := range figs {
		for _, action := range []string{"apply.cold.", "apply.", "revert."} {
			if rest, ok := strings.CutPrefix(f.Name, action); ok && ssh[rest] > 0 {
				figs[i] = f.Against(ssh[rest], "ssh HOST true, this run")
				break
			}
		}
	}
	return figs
}

// fleetMissing says what the sshd fleet needs and this machine lacks ("" for
// nothing): root, OpenSSH's server and client, and util-linux.
func fleetMissing() string {
	if os.Geteuid() != 0 {
		return "not running as root"
	}
	if _, err := os.Stat("/usr/sbin/sshd"); err != nil {
		return "no /usr/sbin/sshd (apt-get install openssh-server)"
	}
	for _, tool := range []string{"ssh", "unshare", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Sprintf("no %s on PATH (openssh-client, util-linux)", tool)
		}
	}
	return ""
}

type fleetBench struct {
	*env
	fleet *sshfleet.Fleet
	smp   *samples
	procs []*proc // one target per host
	inv   string  // inventory of the direct addresses
}

func (fb *fleetBench) run(ctx context.Context, tb testing.TB) error {
	n := len(fb.fleet.Hosts)
	var b strings.Builder
	b.WriteString("all:\n  hosts:\n")
	for _, h := range fb.fleet.Hosts {
		fmt.Fprintf(&b, "    %s: {ansible_host: %s, ansible_user: root}\n", h.Name, h.Addr)
	}
	fb.inv = fb.path("fleet-hosts.yaml")
	if err := os.WriteFile(fb.inv, []byte(b.String()), 0o644); err != nil {
		return err
	}
	for _, h := range fb.fleet.Hosts {
		c, err := h.Command(ctx, fb.percall)
		if err != nil {
			return err
		}
		c.Env = append(os.Environ(), "LD_PRELOAD="+fb.runtime)
		p, err := startCmd(c)
		if err != nil {
			return fmt.Errorf("%s: %w", h.Name, err)
		}
		tb.Cleanup(p.stop)
		fb.procs = append(fb.procs, p)
	}
	fanouts := fb.cfg.Fanouts
	maxFan := fanouts[len(fanouts)-1]
	for _, fo := range fanouts {
		maxFan = max(maxFan, fo)
	}

	// ssh HOST true, the baseline.
	for _, fo := range fanouts {
		for range fb.cfg.FleetRuns {
			wall, err := fb.sshTrue(ctx, fo)
			if err != nil {
				return err
			}
			fb.record(fmt.Sprintf("ssh-true.fanout=%d", fo), n, wall)
		}
	}

	// Bytes: a first run to empty hosts, then the same apply again.
	var dsts []string
	for _, h := range fb.fleet.Hosts {
		dsts = append(dsts, h.HostPort())
	}
	relay, err := newRelay(dsts)
	if err != nil {
		return err
	}
	defer relay.close()
	relayInv := fb.path("fleet-relay.yaml")
	relayKnown := fb.path("fleet-relay-known_hosts")
	if err := relay.writeFiles(fb.fleet, relayInv, relayKnown); err != nil {
		return err
	}
	for range fb.cfg.FleetRuns {
		for _, h := range fb.fleet.Hosts {
			if err := emptyDir(h.Root); err != nil {
				return err
			}
		}
		for i, name := range []string{"cold", "second"} {
			relay.reset()
			wall, err := fb.ulpfleet(ctx, relayInv, relayKnown, maxFan, "apply", i == 0)
			if err != nil {
				return fmt.Errorf("%s apply through the relay: %w", name, err)
			}
			sent, recv := relay.counts()
			fb.smp.add("bytes."+name+".sent-per-host", "bytes", float64(sent)/float64(n))
			fb.smp.add("bytes."+name+".received-per-host", "bytes", float64(recv)/float64(n))
			if i == 0 {
				fb.record(fmt.Sprintf("apply.cold.fanout=%d", maxFan), n, wall)
			}
		}
		if _, err := fb.ulpfleet(ctx, fb.inv, fb.fleet.KnownHosts, maxFan, "revert", true); err != nil {
			return err
		}
	}

	// Hosts per second with everything already on the hosts.
	for _, fo := range fanouts {
		for range fb.cfg.FleetRuns {
			for _, action := range []string{"apply", "revert"} {
				wall, err := fb.ulpfleet(ctx, fb.inv, fb.fleet.KnownHosts, fo, action, true)
				if err != nil {
					return err
				}
				fb.record(fmt.Sprintf("%s.fanout=%d", action, fo), n, wall)
			}
		}
	}

	// The same apply with the hosts among 10,000 known hosts, plain and
	// hashed (ssh-keygen -H): the cost of the host-key lookups.
	for _, hashed := range []bool{false, true} {
		known := fb.path(fmt.Sprintf("fleet-known_hosts-10000-%v", hashed))
		if err := writeBigKnownHosts(fb.fleet.KnownHosts, known, 10000, hashed); err != nil {
			return err
		}
		kind := map[bool]string{false: "plain", true: "hashed"}[hashed]
		for range fb.cfg.FleetRuns {
			wall, err := fb.ulpfleet(ctx, fb.inv, known, maxFan, "apply", false)
			if err != nil {
				return fmt.Errorf("apply with 10,000 %s known hosts: %w", kind, err)
			}
			fb.record(fmt.Sprintf("apply.known-hosts=10000-%s.fanout=%d", kind, maxFan), n, wall)
		}
	}
	return nil
}

// writeBigKnownHosts writes to dst the lines of src among filler lines for
// other hosts, total lines in all, every name hashed when hashed is set:
// the fleet's hosts are spread through the file.
func writeBigKnownHosts(src, dst string, total int, hashed bool) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	own := strings.Split(strings.TrimSpace(string(b)), "\n")
	var filler ssh.PublicKey
	pub, _, err := ed25519.GenerateKey(nil)
	if err == nil {
		filler, err = ssh.NewPublicKey(pub)
	}
	if err != nil {
		return err
	}
	key := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(filler)))
	var out strings.Builder
	step := max(1, total/max(1, len(own)))
	for i := range total {
		line := fmt.Sprintf("filler%05d.example.com %s", i, key)
		if j := i / step; i%step == 0 && j < len(own) {
			line = own[j]
		}
		if hashed {
			name, rest, _ := strings.Cut(line, " ")
			line = knownhosts.HashHostname(name) + " " + rest
		}
		out.WriteString(line + "\n")
	}
	return os.WriteFile(dst, []byte(out.String()), 0o600)
}

// record adds the hosts per second and the ms per host of one run.
func (fb *fleetBench) record(name string, hosts int, wall time.Duration) {
	fb.smp.add(name+".hosts-per-s", "hosts/s", float64(hosts)/wall.Seconds())
	fb.smp.add(name+".per-host", "ms", float64(wall.Microseconds())/1e3/float64(hosts))
}

// fleetSummary is the part of ulpfleet's summary record the bench checks.
type fleetSummary struct {
	Type    string `json:"type"`
	Hosts   int    `json:"hosts"`
	OK      int    `json:"ok"`
	Patched int    `json:"patched"`
	Skipped int    `json:"skipped"`
}

// ulpfleet runs one rollout of the benchmark's livepatch at fan-out fo and
// returns its wall time. It checks that every host succeeded and, when
// changes is set, that every host's process now runs the expected code.
func (fb *fleetBench) ulpfleet(ctx context.Context, inv, known string, fo int, action string, changes bool) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, fb.env.fleet, "-i", inv, "--known-hosts", known, "--identity", fb.fleet.Identity,
		"--canary", "0", "--parallel", fmt.Sprint(fo), "--upload-parallel", fmt.Sprint(fo),
		"--timeout", "2m", "--connect-timeout", "10s", "--results", filepath.Join(fb.work, "last-run.ndjson"), "--json", action, fb.lp)
	c.Dir = fb.work // no ./ulpfleet.yaml is picked up
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	t0 := time.Now()
	err := c.Run()
	wall := time.Since(t0)
	if err != nil {
		return 0, fmt.Errorf("ulpfleet %s: %w: %s", action, err, lastLines(stdout.String()+stderr.String(), 5))
	}
	var sum fleetSummary
	for _, l := range strings.Split(stdout.String(), "\n") {
		var r fleetSummary
		if json.Unmarshal([]byte(l), &r) == nil && r.Type == "summary" {
			sum = r
		}
	}
	n := len(fb.fleet.Hosts)
	if sum.Hosts != n || sum.OK != n {
		return 0, fmt.Errorf("ulpfleet %s: summary %+v, want %d hosts ok", action, sum, n)
	}
	if !changes {
		return wall, nil
	}
	want := map[string]string{"apply": "2", "revert": "1"}[action]
	for i, p := range fb.procs {
		if v, err := p.ask("value"); err != nil || v != want {
			return 0, fmt.Errorf("after ulpfleet %s, %s's process: bench_target(0) = %q (%v), want %s",
				action, fb.fleet.Hosts[i].Name, v, err, want)
		}
	}
	return wall, nil
}

// sshTrue runs `ssh HOST true` on every host, fo at a time, and returns the
// wall time.
func (fb *fleetBench) sshTrue(ctx context.Context, fo int) (time.Duration, error) {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(fo)
	t0 := time.Now()
	for _, h := range fb.fleet.Hosts {
		g.Go(func() error {
			ctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			if out, err := h.SSHCommand(ctx, "true").CombinedOutput(); err != nil {
				return fmt.Errorf("ssh %s true: %w: %s", h.Addr, err, out)
			}
			return nil
		})
	}
	err := g.Wait()
	return time.Since(t0), err
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, " | ")
}

// emptyDir removes everything inside dir.
func emptyDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// relay is a TCP relay on 127.0.0.1 in front of every host that counts the
// payload bytes in each direction. Listener i forwards to dsts[i].
type relay struct {
	lns        []net.Listener
	sent, recv atomic.Int64
	wg         sync.WaitGroup
	mu         sync.Mutex
	conns      map[net.Conn]struct{}
}

func newRelay(dsts []string) (*relay, error) {
	r := &relay{conns: map[net.Conn]struct{}{}}
	for _, dst := range dsts {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			r.close()
			return nil, err
		}
		r.lns = append(r.lns, ln)
		r.wg.Add(1)
		go r.serve(ln, dst)
	}
	return r, nil
}

func (r *relay) serve(ln net.Listener, dst string) {
	defer r.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		r.wg.Add(1)
		go r.pipe(c, dst)
	}
}

func (r *relay) track(c net.Conn, on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if on {
		r.conns[c] = struct{}{}
	} else {
		delete(r.conns, c)
	}
}

func (r *relay) pipe(c net.Conn, dst string) {
	defer r.wg.Done()
	defer c.Close()
	up, err := net.DialTimeout("tcp", dst, 10*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	r.track(c, true)
	r.track(up, true)
	defer r.track(c, false)
	defer r.track(up, false)
	done := make(chan struct{})
	go func() { // owned: pipe waits for it
		defer close(done)
		n, _ := io.Copy(up, c)
		r.sent.Add(n)
		up.(*net.TCPConn).CloseWrite()
	}()
	n, _ := io.Copy(c, up)
	r.recv.Add(n)
	c.(*net.TCPConn).CloseWrite()
	<-done
}

func (r *relay) reset() { r.sent.Store(0); r.recv.Store(0) }

func (r *relay) counts() (sent, recv int64) { return r.sent.Load(), r.recv.Load() }

// writeFiles writes an inventory that reaches every host through the relay
// and a known_hosts file that gives the relay's addresses the hosts' keys.
func (r *relay) writeFiles(f *sshfleet.Fleet, inv, known string) error {
	kh, err := os.ReadFile(f.KnownHosts)
	if err != nil {
		return err
	}
	keys := map[string]string{} // address -> "type base64"
	for _, l := range strings.Split(string(kh), "\n") {
		if addr, key, ok := strings.Cut(strings.TrimSpace(l), " "); ok {
			keys[addr] = key
		}
	}
	var ib, kb strings.Builder
	ib.WriteString("all:\n  hosts:\n")
	for i, h := range f.Hosts {
		port := r.lns[i].Addr().(*net.TCPAddr).Port
		key, ok := keys[h.Addr]
		if !ok {
			return fmt.Errorf("relay: no key of %s in %s", h.Addr, f.KnownHosts)
		}
		fmt.Fprintf(&ib, "    %s: {ansible_host: 127.0.0.1, ansible_port: %d, ansible_user: root}\n", h.Name, port)
		fmt.Fprintf(&kb, "[127.0.0.1]:%d %s\n", port, key)
	}
	return errors.Join(os.WriteFile(inv, []byte(ib.String()), 0o644), os.WriteFile(known, []byte(kb.String()), 0o600))
}

// close stops the relay: no new connection, every open one closed.
func (r *relay) close() {
	for _, ln := range r.lns {
		ln.Close()
	}
	r.mu.Lock()
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}
