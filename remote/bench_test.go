package remote_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"path/filepath"
	"testing"

	"ulp/remote"
	"ulp/remote/remotetest"
	"ulp/remote/remotetest/sshfleet"
)

func benchClient(b *testing.B) *remote.Client {
	return benchDial(b, remotetest.NewServer(b).Config())
}

func benchDial(b *testing.B, cfg remote.Config) *remote.Client {
	c, err := remote.Dial(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// BenchmarkUpload measures a full upload (temp file, verify, rename) of a
// 4 MiB file with new content each time to the in-process server.
func BenchmarkUpload(b *testing.B) {
	c := benchClient(b)
	dst := filepath.Join(b.TempDir(), "agent")
	data := make([]byte, 4<<20)
	rand.Read(data)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		data[0], data[1] = byte(i), byte(i>>8) // defeat the content address
		i++
		u, err := c.Upload(context.Background(), data, dst, 0o755)
		if err != nil || u.Skipped {
			b.Fatalf("Upload = %+v, %v", u, err)
		}
	}
}

// BenchmarkUploadSkipped measures an upload whose content is already on
// the host: a stat and one sha256sum round trip, no transfer.
func BenchmarkUploadSkipped(b *testing.B) {
	c := benchClient(b)
	dst := filepath.Join(b.TempDir(), "agent")
	data := bytes.Repeat([]byte{7}, 4<<20)
	if _, err := c.Upload(context.Background(), data, dst, 0o755); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		u, err := c.Upload(context.Background(), data, dst, 0o755)
		if err != nil || !u.Skipped {
			b.Fatalf("Upload = %+v, %v", u, err)
		}
	}
}

// BenchmarkRun measures one command round trip (session, exec, exit).
func BenchmarkRun(b *testing.B) {
	c := benchClient(b)
	for b.Loop() {
		if _, err := c.Run(context.Background(), []string{"true"}, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRunOpenSSH measures one command round trip to a real sshd host.
func BenchmarkRunOpenSSH(b *testing.B) {
	c := benchDial(b, sshfleet.Start(b, 1).Hosts[0].Config())
	for b.Loop() {
		if _, err := c.Run(context.Background(), []string{"true"}, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUploadOpenSSH measures a full 4 MiB upload to a real sshd host.
func BenchmarkUploadOpenSSH(b *testing.B) {
	c := benchDial(b, sshfleet.Start(b, 1).Hosts[0].Config())
	data := make([]byte, 4<<20)
	rand.Read(data)
	b.SetBytes(int64(len(data)))
	i := 0
	for b.Loop() {
		data[0], data[1] = byte(i), byte(i>>8)
		i++
		if _, err := c.Upload(context.Background(), data, sshfleet.StateDir+"/bench-agent", 0o755); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDialOpenSSH measures connect + handshake + auth to a real sshd.
func BenchmarkDialOpenSSH(b *testing.B) {
	cfg := sshfleet.Start(b, 1).Hosts[0].Config()
	for b.Loop() {
		c, err := remote.Dial(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// BenchmarkDialRunOpenSSH measures a cold connect + `true` + close with
// package remote, the equivalent of BenchmarkSSHClientTrue.
func BenchmarkDialRunOpenSSH(b *testing.B) {
	cfg := sshfleet.Start(b, 1).Hosts[0].Config()
	for b.Loop() {
		c, err := remote.Dial(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Run(context.Background(), []string{"true"}, nil); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// BenchmarkSSHClientTrue measures `ssh HOST true` with OpenSSH's own
// client against the same kind of host: the baseline.
func BenchmarkSSHClientTrue(b *testing.B) {
	h := sshfleet.Start(b, 1).Hosts[0]
	for b.Loop() {
		if out, err := h.SSHCommand(context.Background(), "true").CombinedOutput(); err != nil {
			b.Fatalf("ssh: %v\n%s", err, out)
		}
	}
}
