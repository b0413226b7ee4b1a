package remote_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"ulp/remote"
	"ulp/remote/remotetest"
	"ulp/remote/remotetest/sshfleet"
)

// within fails t when f does not return within limit: every fault test is
// bounded.
func within(t *testing.T, limit time.Duration, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(limit):
		t.Fatalf("not done within %v", limit)
	}
}

func TestDial_Unreachable(t *testing.T) {
	srv := remotetest.NewServer(t)
	tests := []struct {
		name string
		addr string
	}{
		{"refused", remotetest.Refused(t)},
		{"blackholed", remotetest.Blackhole(t)}, // bounded by ConnectTimeout
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := srv.Config()
			cfg.Addr = tt.addr
			cfg.ConnectTimeout = 300 * time.Millisecond
			within(t, 10*time.Second, func() {
				_, err := remote.Dial(t.Context(), cfg)
				if !errors.Is(err, remote.ErrUnreachable) {
					t.Errorf("Dial(%s) = %v, want ErrUnreachable", tt.addr, err)
				}
			})
		})
	}
}

// TestDial_HandshakeTimeout: TCP connects but the server never speaks, both
// directly (deadline) and through a jump host (no deadlines on tunnelled
// connections: the close-on-timer path).
func TestDial_HandshakeTimeout(t *testing.T) {
	jumpSrv := remotetest.NewServer(t)
	silent := remotetest.Silent(t)
	jump := dial(t, jumpSrv.Config())
	for _, via := range []*remote.Client{nil, jump} {
		cfg := jumpSrv.Config()
		cfg.Addr = silent
		cfg.Jump = via
		cfg.HandshakeTimeout = 300 * time.Millisecond
		within(t, 10*time.Second, func() {
			_, err := remote.Dial(t.Context(), cfg)
			if !errors.Is(err, remote.ErrHandshake) || !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("Dial (jump %v) to a silent server = %v, want ErrHandshake after the timeout", via != nil, err)
			}
		})
	}
	if _, err := jump.Run(t.Context(), []string{"true"}, nil); err != nil {
		t.Errorf("jump host unusable after a failed hop: %v", err)
	}
}

// TestDial_ContextCancelsHandshake: cancelling ctx ends a hung handshake.
func TestDial_ContextCancelsHandshake(t *testing.T) {
	srv := remotetest.NewServer(t)
	cfg := srv.Config()
	cfg.Addr = remotetest.Silent(t)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	within(t, 10*time.Second, func() {
		if _, err := remote.Dial(ctx, cfg); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Dial with an expiring ctx = %v, want context.DeadlineExceeded", err)
		}
	})
}

// TestDial_KnownHostsOfferedAlgorithm is the regression test for
// golang/go#29286: known_hosts lists only the ed25519 key of a server that
// also offers ECDSA and RSA keys.
func TestDial_KnownHostsOfferedAlgorithm(t *testing.T) {
	srv := remotetest.NewServer(t, remotetest.ExtraHostKeys())
	dial(t, srv.Config()).Close()
}

// TestUpload_ConnectionCut: the host dies in the middle of an upload. The
// destination keeps its old content, and the next upload succeeds.
func TestUpload_ConnectionCut(t *testing.T) {
	srv := remotetest.NewServer(t, remotetest.CutAfter(1<<20))
	dir := t.TempDir()
	dst := filepath.Join(dir, "agent")
	old := []byte("old agent")
	if err := os.WriteFile(dst, old, 0o755); err != nil {
		t.Fatal(err)
	}
	c := dial(t, srv.Config())
	data := make([]byte, 8<<20)
	rand.Read(data) // incompressible: sent as it is, cut after 1 MiB
	within(t, 30*time.Second, func() {
		_, err := c.Upload(t.Context(), data, dst, 0o755)
		if !errors.Is(err, remote.ErrUpload) {
			t.Errorf("Upload over a cut connection = %v, want ErrUpload", err)
		}
	})
	checkFile(t, dst, old, 0o755)

	// A stale temporary file is swept by the next successful upload.
	srv.Close() // wait for the server's last writes to the file
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			past := time.Now().Add(-remote.StaleTemp - time.Minute)
			os.Chtimes(filepath.Join(dir, e.Name()), past, past)
		}
	}
	srv2 := remotetest.NewServer(t)
	c2 := dial(t, srv2.Config())
	if _, err := c2.Upload(t.Context(), data[:1000], dst, 0o755); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dst, data[:1000], 0o755)
	noTemps(t, dir)
}

// TestUpload_OpenSSHKilledMidUpload: the real sshd (and everything on the
// host) is killed while a 64 MiB upload is in flight.
func TestUpload_OpenSSHKilledMidUpload(t *testing.T) {
	f := sshfleet.Start(t, 1)
	h := f.Hosts[0]
	old := []byte("old agent")
	if err := os.WriteFile(filepath.Join(h.Root, "agent"), old, 0o755); err != nil {
		t.Fatal(err)
	}
	c := dial(t, h.Config())
	data := bytes.Repeat([]byte("0123456789abcdef"), 4<<20)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Upload(t.Context(), data, sshfleet.StateDir+"/agent", 0o755)
		errc <- err
	}()
	// Kill the host once the temporary file has grown.
	deadline := time.Now().Add(20 * time.Second)
	for killed := false; !killed; {
		ents, _ := os.ReadDir(h.Root)
		for _, e := range ents {
			if fi, err := e.Info(); err == nil && strings.Contains(e.Name(), ".tmp-") && fi.Size() > 0 {
				h.Kill()
				killed = true
			}
		}
		if killed {
			break
		}
		select {
		case err := <-errc:
			t.Fatalf("upload ended before the kill: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("no temporary file appeared")
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, remote.ErrUpload) {
			t.Errorf("Upload to a killed host = %v, want ErrUpload", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Upload did not return after the host was killed")
	}
	checkFile(t, filepath.Join(h.Root, "agent"), old, 0o755)

	h.Restart(t)
	c2 := dial(t, h.Config())
	if _, err := c2.Upload(t.Context(), data, sshfleet.StateDir+"/agent", 0o755); err != nil {
		t.Fatal(err)
	}
	checkFile(t, filepath.Join(h.Root, "agent"), data, 0o755)
}

// TestDial_OpenSSHHostKeyChanged: a real host regenerates its key.
func TestDial_OpenSSHHostKeyChanged(t *testing.T) {
	f := sshfleet.Start(t, 2)
	f.Hosts[0].RegenerateHostKey(t)
	_, err := remote.Dial(t.Context(), f.Hosts[0].Config())
	if !errors.Is(err, remote.ErrHostKeyMismatch) {
		t.Fatalf("Dial after the host key changed = %v, want ErrHostKeyMismatch", err)
	}
	dial(t, f.Hosts[1].Config()).Close() // the other host is unaffected
}

// TestKeepalive_ClosesDeadConnection: the peer stops answering (a proxy
// freezes the traffic); the keepalive closes the connection and Run
// reports ErrConnLost instead of hanging.
func TestKeepalive_ClosesDeadConnection(t *testing.T) {
	srv := remotetest.NewServer(t)
	p := newFreezeProxy(t, srv.Addr)
	cfg := srv.Config()
	kh := writeKnownHosts(t, p.addr, srv.HostKey.PublicKey())
	cfg.Addr, cfg.KnownHosts = p.addr, []string{kh}
	cfg.KeepaliveInterval = 100 * time.Millisecond
	cfg.KeepaliveMissed = 3
	c := dial(t, cfg)
	if _, err := c.Run(t.Context(), []string{"true"}, nil); err != nil {
		t.Fatal(err)
	}
	p.freeze()
	within(t, 20*time.Second, func() {
		_, err := c.Run(t.Context(), []string{"sleep", "30"}, nil)
		if !errors.Is(err, remote.ErrConnLost) {
			t.Errorf("Run over a frozen connection = %v, want ErrConnLost", err)
		}
	})
}

// freezeProxy forwards TCP to a target until frozen, then swallows
// everything: a peer that vanished without closing.
type freezeProxy struct {
	addr   string
	frozen atomic.Bool
}

func newFreezeProxy(t *testing.T, target string) *freezeProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezeProxy{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			a, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", target)
			if err != nil {
				a.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, a, b)
			mu.Unlock()
			wg.Go(func() { p.pipe(b, a) })
			wg.Go(func() { p.pipe(a, b) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return p
}

func (p *freezeProxy) freeze() { p.frozen.Store(true) }

func (p *freezeProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.frozen.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				return
			}
			return
		}
	}
}

// TestAcceptNew_Concurrent: 20 unknown hosts accepted at once append one
// well-formed line each to the same known_hosts, and are then known.
func TestAcceptNew_Concurrent(t *testing.T) {
	kh := filepath.Join(t.TempDir(), "known_hosts")
	var srvs []*remotetest.Server
	for range 20 {
		srvs = append(srvs, remotetest.NewServer(t))
	}
	var wg sync.WaitGroup
	for _, s := range srvs {
		wg.Go(func() {
			cfg := s.Config()
			cfg.KnownHosts, cfg.HostKeyPolicy = []string{kh}, remote.AcceptNew
			c, err := remote.Dial(t.Context(), cfg)
			if err != nil {
				t.Error(err)
				return
			}
			c.Close()
		})
	}
	wg.Wait()
	b, err := os.ReadFile(kh)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != len(srvs) {
		t.Fatalf("known_hosts has %d lines, want %d:\n%s", len(lines), len(srvs), b)
	}
	for _, s := range srvs {
		cfg := s.Config()
		cfg.KnownHosts = []string{kh}
		c, err := remote.Dial(t.Context(), cfg) // strict
		if err != nil {
			t.Fatalf("strict Dial after accept-new: %v", err)
		}
		c.Close()
	}
}

// TestDial_KnownKeyTypeNotOffered: known_hosts holds only an ECDSA key for
// a host that now offers only ed25519: its keys were replaced.
func TestDial_KnownKeyTypeNotOffered(t *testing.T) {
	srv := remotetest.NewServer(t)
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ssh.NewPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	cfg := srv.Config()
	cfg.KnownHosts = []string{writeKnownHosts(t, cfg.Addr, pub)}
	if _, err := remote.Dial(t.Context(), cfg); !errors.Is(err, remote.ErrHostKeyMismatch) {
		t.Fatalf("Dial = %v, want ErrHostKeyMismatch", err)
	}
}

// TestClose_ReleasesGoroutines: after Close, no goroutine of the client
// (keepalive, session waits, stdin copies, sftp) is left, also after a
// cancelled command.
func TestClose_ReleasesGoroutines(t *testing.T) {
	srv := remotetest.NewServer(t)
	dir := t.TempDir()
	before := runtime.NumGoroutine()
	cfg := srv.Config()
	cfg.KeepaliveInterval = 10 * time.Millisecond
	c := dial(t, cfg)
	if _, err := c.Upload(t.Context(), []byte("x"), filepath.Join(dir, "f"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Run(t.Context(), []string{"cat"}, strings.NewReader("in")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.Run(ctx, []string{"sleep", "30"}, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run = %v, want DeadlineExceeded", err)
	}
	c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after Close:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestUpload_Cancel: cancelling ctx aborts a transfer without touching the
// destination, and the Client uploads again afterwards.
func TestUpload_Cancel(t *testing.T) {
	srv := remotetest.NewServer(t)
	dir := t.TempDir()
	dst := filepath.Join(dir, "agent")
	c := dial(t, srv.Config())
	data := make([]byte, 64<<20)
	rand.Read(data) // incompressible: the transfer takes long enough to cancel
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		// Cancel once the transfer is under way.
		for srv.SFTPBytes.Load() < 1<<20 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	within(t, 30*time.Second, func() {
		_, err := c.Upload(ctx, data, dst, 0o755)
		if !errors.Is(err, remote.ErrUpload) || !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled Upload = %v, want ErrUpload and context.Canceled", err)
		}
	})
	if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("destination exists after a cancelled upload: %v", err)
	}
	noTemps(t, dir)
	if _, err := c.Upload(t.Context(), data[:10], dst, 0o755); err != nil {
		t.Fatalf("Upload after a cancelled one: %v", err)
	}
	checkFile(t, dst, data[:10], 0o755)
}

// TestDial_OpenSSHStoppedBehindJump: a real sshd that is frozen (SIGSTOP:
// TCP connects, no banner) is reached directly and through a real jump
// host; the handshake timeout fires both ways and the jump host stays
// usable.
func TestDial_OpenSSHStoppedBehindJump(t *testing.T) {
	f := sshfleet.Start(t, 2)
	jumpHost, target := f.Hosts[0], f.Hosts[1]
	jump := dial(t, jumpHost.Config())
	pid, err := target.SSHDPID()
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT) })
	for _, via := range []*remote.Client{nil, jump} {
		cfg := target.Config()
		cfg.Jump = via
		cfg.HandshakeTimeout = 500 * time.Millisecond
		within(t, 15*time.Second, func() {
			if _, err := remote.Dial(t.Context(), cfg); !errors.Is(err, remote.ErrHandshake) {
				t.Errorf("Dial (jump %v) to a stopped sshd = %v, want ErrHandshake", via != nil, err)
			}
		})
	}
	if _, err := jump.Run(t.Context(), []string{"true"}, nil); err != nil {
		t.Errorf("jump host unusable: %v", err)
	}
	syscall.Kill(pid, syscall.SIGCONT)
	dial(t, target.Config()).Close() // back to normal
}

// TestRun_OpenSSHLoginNoise: root's .bashrc on the host prints a banner on
// stdout; Run's output and SFTP uploads are unaffected.
func TestRun_OpenSSHLoginNoise(t *testing.T) {
	f := sshfleet.Start(t, 1)
	h := f.Hosts[0]
	// The file bind-mounted over /root/.bashrc inside the host.
	if err := os.WriteFile(filepath.Join(h.Dir, "empty"), []byte("echo 'Welcome to host01!'\necho 'ulp-pid-0000000000000000:1'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := dial(t, h.Config())
	res, err := c.Run(t.Context(), []string{"echo", "hello"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Stdout) != "hello\n" {
		t.Errorf("stdout = %q, want %q", res.Stdout, "hello\n")
	}
	if _, err := c.Upload(t.Context(), []byte("x"), sshfleet.StateDir+"/f", 0o644); err != nil {
		t.Errorf("Upload with a noisy .bashrc: %v", err)
	}
	u, err := c.Upload(t.Context(), []byte("x"), sshfleet.StateDir+"/f", 0o644)
	if err != nil || !u.Skipped {
		t.Errorf("second Upload with a noisy .bashrc = %+v, %v; want skipped", u, err)
	}
}

// TestUpload_Compressed: large data that compresses is sent gzipped and
// arrives whole; a host without gzip gets the plain bytes.
func TestUpload_Compressed(t *testing.T) {
	data := bytes.Repeat([]byte("a static Go binary compresses well "), 120000) // 4.2 MB
	t.Run("gzip", func(t *testing.T) {
		srv := remotetest.NewServer(t)
		dst := filepath.Join(t.TempDir(), "agent")
		if _, err := dial(t, srv.Config()).Upload(t.Context(), data, dst, 0o755); err != nil {
			t.Fatal(err)
		}
		checkFile(t, dst, data, 0o755)
		noTemps(t, filepath.Dir(dst))
		if n := srv.SFTPBytes.Load(); n > int64(len(data))/4 {
			t.Errorf("%d SFTP bytes for %d bytes of data: not compressed", n, len(data))
		}
	})
	// Hosts lacking gzip (plain bytes sent) or b2sum (sha256sum checks).
	for _, tt := range []struct {
		name  string
		tools []string
		plain bool
	}{
		{"no gzip on the host", []string{"bash", "sh", "b2sum", "chmod", "sync", "rm"}, true},
		{"no b2sum on the host", []string{"bash", "sh", "gzip", "sha256sum", "chmod", "sync", "rm"}, false},
		{"neither", []string{"bash", "sh", "sha256sum", "chmod", "sync", "rm"}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bin := t.TempDir()
			for _, tool := range tt.tools {
				p, err := exec.LookPath(tool)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(p, filepath.Join(bin, tool)); err != nil {
					t.Fatal(err)
				}
			}
			srv := remotetest.NewServer(t, remotetest.Path(bin))
			dst := filepath.Join(t.TempDir(), "agent")
			c := dial(t, srv.Config())
			for i, d := range [][]byte{data, append(bytes.Clone(data), '!'), append(bytes.Clone(data), '!')} {
				u, err := c.Upload(t.Context(), d, dst, 0o755)
				if err != nil {
					t.Fatalf("upload %d: %v", i, err)
				}
				if u.Skipped != (i == 2) {
					t.Errorf("upload %d: skipped %v", i, u.Skipped)
				}
				checkFile(t, dst, d, 0o755)
			}
			noTemps(t, filepath.Dir(dst))
			if n := srv.SFTPBytes.Load(); (n >= 2*int64(len(data))) != tt.plain {
				t.Errorf("%d SFTP bytes for two uploads of %d bytes, want them plain: %v", n, len(data), tt.plain)
			}
		})
	}
}
