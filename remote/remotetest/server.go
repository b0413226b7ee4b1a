package remotetest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"ulp/remote"
)

// Server is an in-process SSH server on 127.0.0.1. Exec requests run as
// real processes (bash -c) on this machine, as the test's user; the
// sftp subsystem serves the local file system. Everything it starts is
// stopped in t.Cleanup.
type Server struct {
	// Addr is the server's "127.0.0.1:PORT".
	Addr string
	// HostKey is the server's host key.
	HostKey ssh.Signer
	// KnownHosts is a known_hosts file listing only this server.
	KnownHosts string
	// Identity is the path of a client private key the server accepts.
	Identity string

	cfg       *ssh.ServerConfig
	ln        net.Listener
	cutAfter  int64 // close a connection after this many SFTP bytes in (0: never)
	extraKeys bool
	path      string // PATH of commands

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup

	// SFTPBytes counts the bytes received on sftp channels.
	SFTPBytes atomic.Int64
	// Execs counts exec requests started.
	Execs atomic.Int64
	// Forwards counts direct-tcpip channels accepted (hops through this
	// server as a jump host).
	Forwards atomic.Int64
}

// Option configures [NewServer].
type Option func(*Server)

// CutAfter makes the server drop the whole TCP connection once a
// connection's sftp channels have received n bytes: a host dying in the
// middle of an upload.
func CutAfter(n int64) Option { return func(s *Server) { s.cutAfter = n } }

// ExtraHostKeys makes the server also offer an ECDSA and an RSA host key;
// its KnownHosts file still lists only the ed25519 key, as a known_hosts
// written by OpenSSH's ssh often does.
func ExtraHostKeys() Option { return func(s *Server) { s.extraKeys = true } }

// Path makes commands run with PATH=dirs instead of the usual system PATH
// (a host lacking a tool).
func Path(dirs string) Option { return func(s *Server) { s.path = dirs } }

// NewServer starts a server listening on 127.0.0.1:0.
func NewServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	dir := t.TempDir()
	hostKey, _ := WriteKey(t, dir, "host_key")
	client, ident := WriteKey(t, dir, "id_ed25519")
	s := &Server{HostKey: hostKey, Identity: ident, conns: map[net.Conn]struct{}{}}
	for _, o := range opts {
		o(s)
	}
	authorized := client.PublicKey().Marshal()
	s.cfg = &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if bytes.Equal(k.Marshal(), authorized) {
				return nil, nil
			}
			return nil, errors.New("unknown key")
		},
	}
	s.cfg.AddHostKey(hostKey)
	if s.extraKeys {
		for _, gen := range []func() (crypto.Signer, error){
			func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) },
			func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 2048) },
		} {
			k, err := gen()
			if err != nil {
				t.Fatal(err)
			}
			sg, err := ssh.NewSignerFromSigner(k)
			if err != nil {
				t.Fatal(err)
			}
			s.cfg.AddHostKey(sg)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.ln = ln
	s.Addr = ln.Addr().String()
	s.KnownHosts = filepath.Join(dir, "known_hosts")
	line := knownhosts.Line([]string{knownhosts.Normalize(s.Addr)}, hostKey.PublicKey()) + "\n"
	if err := os.WriteFile(s.KnownHosts, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	s.wg.Go(s.serve)
	t.Cleanup(s.Close)
	return s
}

// Config returns a strict remote.Config for this server: its known_hosts
// and its accepted identity, short timeouts.
func (s *Server) Config() remote.Config {
	return remote.Config{
		Addr:       s.Addr,
		User:       "root",
		KnownHosts: []string{s.KnownHosts},
		Identities: []string{s.Identity},
	}
}

// DropConnections closes every open connection, as a crashed server would.
func (s *Server) DropConnections() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

// Close stops listening, drops every connection and waits for all of the
// server's goroutines and processes to end.
func (s *Server) Close() {
	s.ln.Close()
	s.DropConnections()
	s.wg.Wait()
}

func (s *Server) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Go(func() {
			s.handleConn(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		})
	}
}

func (s *Server) handleConn(nc net.Conn) {
	sc, chans, reqs, err := ssh.NewServerConn(nc, s.cfg)
	if err != nil {
		return
	}
	defer sc.Close()
	s.wg.Go(func() { ssh.DiscardRequests(reqs) })
	var sftpIn atomic.Int64
	var wg sync.WaitGroup
	defer wg.Wait()
	for nch := range chans {
		if nch.ChannelType() == "direct-tcpip" {
			wg.Go(func() { s.forward(nch) })
			continue
		}
		if nch.ChannelType() != "session" {
			nch.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, creqs, err := nch.Accept()
		if err != nil {
			continue
		}
		wg.Go(func() { s.session(nc, ch, creqs, &sftpIn) })
	}
}

// forward serves a direct-tcpip channel (a jump-host hop) to a 127.0.0.0/8
// address only.
func (s *Server) forward(nch ssh.NewChannel) {
	var p struct {
		Host     string
		Port     uint32
		OrigHost string
		OrigPort uint32
	}
	if err := ssh.Unmarshal(nch.ExtraData(), &p); err != nil {
		nch.Reject(ssh.ConnectionFailed, "bad request")
		return
	}
	ip := net.ParseIP(p.Host)
	if ip == nil || !ip.IsLoopback() {
		nch.Reject(ssh.Prohibited, "loopback targets only")
		return
	}
	tc, err := net.Dial("tcp", net.JoinHostPort(p.Host, fmt.Sprint(p.Port)))
	if err != nil {
		nch.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	ch, reqs, err := nch.Accept()
	if err != nil {
		tc.Close()
		return
	}
	s.Forwards.Add(1)
	go ssh.DiscardRequests(reqs)
	var wg sync.WaitGroup
	wg.Go(func() { io.Copy(tc, ch); tc.Close() })
	io.Copy(ch, tc)
	ch.CloseWrite()
	wg.Wait()
	ch.Close()
	tc.Close()
}

// session serves one session channel: one exec or one sftp subsystem.
func (s *Server) session(nc net.Conn, ch ssh.Channel, reqs <-chan *ssh.Request, sftpIn *atomic.Int64) {
	defer ch.Close()
	for req := range reqs {
		switch req.Type {
		case "exec":
			var p struct{ Cmd string }
			if err := ssh.Unmarshal(req.Payload, &p); err != nil {
				req.Reply(false, nil)
				continue
			}
			req.Reply(true, nil)
			s.Execs.Add(1)
			s.exec(ch, reqs, p.Cmd)
			return
		case "subsystem":
			var p struct{ Name string }
			if err := ssh.Unmarshal(req.Payload, &p); err != nil || p.Name != "sftp" {
				req.Reply(false, nil)
				continue
			}
			req.Reply(true, nil)
			go ssh.DiscardRequests(reqs)
			rw := &countingRW{Channel: ch, n: sftpIn, total: &s.SFTPBytes, limit: s.cutAfter, conn: nc}
			srv, err := sftp.NewServer(rw)
			if err != nil {
				return
			}
			_ = srv.Serve()
			srv.Close()
			return
		case "env", "pty-req":
			req.Reply(true, nil)
		default:
			req.Reply(false, nil)
		}
	}
}

// exec runs cmd with the shell in its own process group, relays signals and
// reports the exit status. Closing the channel kills the group.
func (s *Server) exec(ch ssh.Channel, reqs <-chan *ssh.Request, cmd string) {
	// Like sshd: the login shell (bash, which execs a lone command as
	// OpenSSH's users see) with a clean environment.
	shell := "/bin/sh"
	if _, err := os.Stat("/bin/bash"); err == nil {
		shell = "/bin/bash"
	}
	c := exec.Command(shell, "-c", cmd)
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	if s.path != "" {
		path = s.path
	}
	c.Env = []string{"PATH=" + path, "HOME=" + os.Getenv("HOME"), "LANG=C.UTF-8"}
	pr, pw, err := os.Pipe()
	if err != nil {
		sendExit(ch, 127, "")
		return
	}
	c.Stdin, c.Stdout, c.Stderr = pr, ch, ch.Stderr()
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = c.Start()
	pr.Close()
	if err != nil {
		pw.Close()
		sendExit(ch, 127, "")
		return
	}
	var wg sync.WaitGroup
	// stdin: ends at the client's EOF or when the channel is closed below.
	wg.Go(func() {
		_, _ = io.Copy(pw, ch)
		pw.Close()
	})
	done := make(chan struct{})
	wg.Go(func() {
		for {
			select {
			case req, ok := <-reqs:
				if !ok { // channel closed by the client
					_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
					<-done
					return
				}
				if req.Type == "signal" {
					var p struct{ Name string }
					if ssh.Unmarshal(req.Payload, &p) == nil {
						if sig, ok := signals[p.Name]; ok {
							_ = syscall.Kill(-c.Process.Pid, sig)
						}
					}
				}
				req.Reply(false, nil)
			case <-done:
				return
			}
		}
	})
	err = c.Wait()
	close(done)
	var ee *exec.ExitError
	switch {
	case err == nil:
		sendExit(ch, 0, "")
	case errors.As(err, &ee):
		ws := ee.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			sendExit(ch, -1, signalName(ws.Signal()))
		} else {
			sendExit(ch, ws.ExitStatus(), "")
		}
	default:
		sendExit(ch, 255, "")
	}
	ch.CloseWrite()
	// Wait for the client to close (it drains first), so that the request
	// goroutine above ends.
	ch.Close()
	wg.Wait()
}

var signals = map[string]syscall.Signal{
	"TERM": syscall.SIGTERM, "KILL": syscall.SIGKILL, "INT": syscall.SIGINT,
	"HUP": syscall.SIGHUP, "QUIT": syscall.SIGQUIT, "USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2,
}

func signalName(sig syscall.Signal) string {
	for n, s := range signals {
		if s == sig {
			return n
		}
	}
	return fmt.Sprintf("%d", int(sig))
}

func sendExit(ch ssh.Channel, code int, sig string) {
	if sig != "" {
		p := ssh.Marshal(struct {
			Signal     string
			CoreDumped bool
			Msg, Lang  string
		}{Signal: sig})
		ch.SendRequest("exit-signal", false, p)
		return
	}
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(code))
	ch.SendRequest("exit-status", false, b[:])
}

// countingRW counts the bytes the sftp server reads and cuts the TCP
// connection once limit is passed.
type countingRW struct {
	ssh.Channel
	n, total *atomic.Int64
	limit    int64
	conn     net.Conn
}

func (c *countingRW) Read(p []byte) (int, error) {
	n, err := c.Channel.Read(p)
	c.total.Add(int64(n))
	if c.n.Add(int64(n)) > c.limit && c.limit > 0 {
		c.conn.Close()
		return 0, io.ErrClosedPipe
	}
	return n, err
}

// Silent returns the address of a 127.0.0.1 listener that accepts TCP
// connections and never sends a byte: an SSH server hung before its banner.
func Silent(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String()
}

// Refused returns a 127.0.0.1 address where nothing listens.
func Refused(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// Blackhole returns a 127.0.0.1 address whose listen queue is full and
// never drained: the kernel drops further SYNs, so a connect there hangs
// until the client's connect timeout, like a host that is switched off.
func Blackhole(t testing.TB) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	// Fill the queue (backlog 0 admits one connection, sometimes two).
	for range 3 {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			break
		}
		t.Cleanup(func() { c.Close() })
	}
	return addr
}
