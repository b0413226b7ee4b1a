package cli

import (
	"context"
	"fmt"
	"os"
	"testing"

	"ulp/fleet"
	"ulp/inventory"
	"ulp/remote"
	"ulp/remote/remotetest/sshfleet"
)

// benchHosts is the size of the benchmark fleet.
const benchHosts = 32

// BenchmarkRollout_OpenSSH measures whole rollouts (connect, mkdir, two
// content-addressed uploads that find their files already there, one
// trigger of the stand-in agent, close) over 32 real sshd hosts at fan-out
// 1, 8 and 32, reported in hosts per second.
func BenchmarkRollout_OpenSSH(b *testing.B) {
	f := sshfleet.Start(b, benchHosts)
	var hosts []inventory.Host
	for _, h := range f.Hosts {
		hosts = append(hosts, inventory.Host{Name: h.Name, Addr: h.Addr, Port: h.Port, User: "root", Groups: []string{"all"}})
	}
	script, err := os.ReadFile("testdata/fakeagent.sh")
	if err != nil {
		b.Fatal(err)
	}
	lp, err := os.ReadFile(sampleContainer)
	if err != nil {
		b.Fatal(err)
	}
	p, err := fleet.NewPlan(hosts, fleet.Options{Action: fleet.Apply, Agent: fleet.NewArtifact("ulp", script),
		Containers: []fleet.Artifact{fleet.NewArtifact("sample.so", lp)}})
	if err != nil {
		b.Fatal(err)
	}
	d := fleet.SSHDialer{Base: remote.Config{KnownHosts: []string{f.KnownHosts}, Identities: []string{f.Identity}}}
	for _, fanout := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("fanout=%d", fanout), func(b *testing.B) {
			r := &fleet.Rollout{Dialer: d, Parallel: fanout, UploadParallel: fanout}
			for b.Loop() {
				res, err := r.Run(context.Background(), p)
				if err != nil {
					b.Fatalf("rollout: %v (%v)", err, res.Counts())
				}
			}
			b.ReportMetric(float64(benchHosts*b.N)/b.Elapsed().Seconds(), "hosts/s")
		})
	}
}

// BenchmarkSSHTrue_OpenSSH is the baseline for BenchmarkRollout_OpenSSH:
// `ssh HOST true` with OpenSSH's own client (a new connection each time, no
// ControlMaster), one host after the other, in hosts per second.
func BenchmarkSSHTrue_OpenSSH(b *testing.B) {
	f := sshfleet.Start(b, 1)
	h := f.Hosts[0]
	for b.Loop() {
		if out, err := h.SSHCommand(context.Background(), "true").CombinedOutput(); err != nil {
			b.Fatalf("ssh: %v\n%s", err, out)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "hosts/s")
}
