package remote_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"ulp/remote"
	"ulp/remote/remotetest"
	"ulp/remote/remotetest/sshfleet"
)

// host is one SSH server the conformance suite runs against.
type host struct {
	cfg remote.Config
	// dir is a writable folder as the host sees it; local is the same
	// folder as this test sees it.
	dir, local string
}

// TestConformance_InProcess runs the suite against remotetest's
// in-process server (always).
func TestConformance_InProcess(t *testing.T) {
	srv := remotetest.NewServer(t)
	d := t.TempDir()
	suite(t, func(t *testing.T) host {
		sub := filepath.Join(d, t.Name())
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		return host{cfg: srv.Config(), dir: sub, local: sub}
	})
}

// TestConformance_OpenSSH runs the same suite against a real OpenSSH sshd
// in its own namespaces (root and sshd required).
func TestConformance_OpenSSH(t *testing.T) {
	f := sshfleet.Start(t, 1)
	h := f.Hosts[0]
	suite(t, func(t *testing.T) host {
		name := strings.ReplaceAll(t.Name(), "/", "_")
		local := filepath.Join(h.Root, name)
		if err := os.MkdirAll(local, 0o755); err != nil {
			t.Fatal(err)
		}
		return host{cfg: h.Config(), dir: sshfleet.StateDir + "/" + name, local: local}
	})
}

func dial(t *testing.T, cfg remote.Config) *remote.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	c, err := remote.Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func suite(t *testing.T, newHost func(t *testing.T) host) {
	t.Run("Run_OutputAndExitCode", func(t *testing.T) {
		h := newHost(t)
		c := dial(t, h.cfg)
		tests := []struct {
			argv           []string
			stdout, stderr string
			code           int
			signal         string
		}{
			{[]string{"true"}, "", "", 0, ""},
			{[]string{"sh", "-c", "echo out; echo err >&2; exit 3"}, "out\n", "err\n", 3, ""},
			{[]string{"sh", "-c", "exit 255"}, "", "", 255, ""}, // libpulp's fatal: still a remote exit
			{[]string{"sh", "-c", "kill -KILL $$"}, "", "", -1, "KILL"},
		}
		for _, tt := range tests {
			res, err := c.Run(t.Context(), tt.argv, nil)
			if string(res.Stdout) != tt.stdout || string(res.Stderr) != tt.stderr || res.ExitCode != tt.code {
				t.Errorf("Run(%q) = {%q %q %d}, want {%q %q %d}", tt.argv, res.Stdout, res.Stderr, res.ExitCode, tt.stdout, tt.stderr, tt.code)
			}
			var ee *remote.ExitError
			switch {
			case tt.code == 0 && err != nil:
				t.Errorf("Run(%q): %v", tt.argv, err)
			case tt.code != 0 && !errors.As(err, &ee):
				t.Errorf("Run(%q) error = %v, want *ExitError", tt.argv, err)
			case tt.code != 0 && (ee.Code != tt.code || ee.Signal != tt.signal):
				t.Errorf("Run(%q) ExitError = {%d %q}, want {%d %q}", tt.argv, ee.Code, ee.Signal, tt.code, tt.signal)
			case errors.Is(err, remote.ErrConnLost):
				t.Errorf("Run(%q): remote exit classified as transport error: %v", tt.argv, err)
			}
		}
	})

	t.Run("Run_ArgvQuoting", func(t *testing.T) {
		h := newHost(t)
		c := dial(t, h.cfg)
		args := []string{"plain", "two words", "", "it's", `"dq"`, "$HOME", "`id`", "a;b", "*", "new\nline", "back\\slash", "~", "-n", "x=y", "ünï"}
		res, err := c.Run(t.Context(), append([]string{"printf", `%s|`}, args...), nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(res.Stdout), strings.Join(args, "|")+"|"; got != want {
			t.Errorf("remote argv = %q, want %q", got, want)
		}
	})

	t.Run("Run_Stdin", func(t *testing.T) {
		h := newHost(t)
		c := dial(t, h.cfg)
		in := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
		res, err := c.Run(t.Context(), []string{"sha256sum"}, bytes.NewReader(in))
		if err != nil {
			t.Fatal(err)
		}
		res2, err := c.Run(t.Context(), []string{"wc", "-c"}, bytes.NewReader(in))
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(string(res2.Stdout)) != strconv.Itoa(len(in)) || len(res.Stdout) < 64 {
			t.Errorf("stdin not delivered whole: wc -c = %q", res2.Stdout)
		}
		// A command that exits without reading its stdin is not a
		// transport error.
		for range 5 {
			big := bytes.NewReader(bytes.Repeat(in, 8))
			if _, err := c.Run(t.Context(), []string{"true"}, big); err != nil {
				t.Fatalf("Run(true) with unread stdin: %v", err)
			}
		}
	})

	t.Run("Run_CancelStopsRemoteCommand", func(t *testing.T) {
		h := newHost(t)
		c := dial(t, h.cfg)
		pidfile := h.dir + "/pid"
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			_, err := c.Run(ctx, []string{"sh", "-c", `echo $$ > "$1"; exec sleep 60`, "sh", pidfile}, nil)
			done <- err
		}()
		pid := waitFile(t, filepath.Join(h.local, "pid"))
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Run after cancel: %v, want context.Canceled", err)
			}
		case <-time.After(60 * time.Second): // at most 3 cancelGrace of 5 s
			t.Fatal("Run did not return after cancel")
		}
		// The remote sleep must go away (checked on the host itself).
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, err := c.Run(t.Context(), []string{"kill", "-0", pid}, nil)
			var ee *remote.ExitError
			if errors.As(err, &ee) {
				break // no such process
			}
			if err != nil {
				t.Fatal(err)
			}
			if time.Now().After(deadline) {
				t.Fatalf("remote process %s still running 30s after cancel", pid)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("Upload_CreatesReplacesSkips", func(t *testing.T) {
		h := newHost(t)
		c := dial(t, h.cfg)
		dst := h.dir + "/agent"
		local := filepath.Join(h.local, "agent")
		v1 := bytes.Repeat([]byte("version one "), 300000) // 3.6 MB: many SFTP packets
		v2 := append(bytes.Clone(v1), "and two"...)

		u, err := c.Upload(t.Context(), v1, dst, 0o755)
		if err != nil {
			t.Fatal(err)
		}
		if u.Skipped || u.Size != int64(len(v1)) || u.Path != dst {
			t.Errorf("first upload = %+v", u)
		}
		checkFile(t, local, v1, 0o755)
		ino1 := inode(t, local)

		u, err = c.Upload(t.Context(), v1, dst, 0o755)
		if err != nil {
			t.Fatal(err)
		}
		if !u.Skipped {
			t.Errorf("same content uploaded again: %+v", u)
		}
		if inode(t, local) != ino1 {
			t.Error("skipped upload replaced the file")
		}

		u, err = c.Upload(t.Context(), v2, dst, 0o700)
		if err != nil {
			t.Fatal(err)
		}
		if u.Skipped {
			t.Errorf("changed content skipped: %+v", u)
		}
		checkFile(t, local, v2, 0o700)
		if inode(t, local) == ino1 {
			t.Error("file rewritten in place, not replaced by rename")
		}
		noTemps(t, h.local)
	})

	t.Run("Upload_Errors", func(t *testing.T) {
		h := newHost(t)
		c := dial(t, h.cfg)
		if _, err := c.Upload(t.Context(), []byte("x"), h.dir+"/file", 0o644); err != nil {
			t.Fatal(err)
		}
		// A parent that is a file cannot be created.
		for _, dst := range []string{h.dir + "/file/agent", "relative/agent", h.dir + "/"} {
			if _, err := c.Upload(t.Context(), []byte("x"), dst, 0o644); !errors.Is(err, remote.ErrUpload) {
				t.Errorf("Upload(%q) = %v, want ErrUpload", dst, err)
			}
		}
		noTemps(t, h.local)
		// The connection is still usable.
		if _, err := c.Run(t.Context(), []string{"true"}, nil); err != nil {
			t.Errorf("Run after failed uploads: %v", err)
		}
	})

	t.Run("Upload_CreatesParents", func(t *testing.T) {
		h := newHost(t)
		c := dial(t, h.cfg)
		data := []byte("agent")
		u, err := c.Upload(t.Context(), data, h.dir+"/a/b/c/agent", 0o755)
		if err != nil || u.Skipped {
			t.Fatalf("Upload into missing folders = %+v, %v", u, err)
		}
		checkFile(t, filepath.Join(h.local, "a", "b", "c", "agent"), data, 0o755)
		noTemps(t, h.local)
	})

	t.Run("HostKey_Mismatch", func(t *testing.T) {
		h := newHost(t)
		cfg := h.cfg
		cfg.KnownHosts = []string{writeKnownHosts(t, cfg.Addr, otherKey(t))}
		_, err := remote.Dial(t.Context(), cfg)
		var hke *remote.HostKeyError
		if !errors.Is(err, remote.ErrHostKeyMismatch) || !errors.As(err, &hke) || len(hke.Want) != 1 {
			t.Fatalf("Dial with a changed host key = %v, want ErrHostKeyMismatch", err)
		}
	})

	t.Run("HostKey_UnknownStrictThenAcceptNew", func(t *testing.T) {
		h := newHost(t)
		cfg := h.cfg
		kh := filepath.Join(t.TempDir(), "known_hosts")
		cfg.KnownHosts = []string{kh}
		if _, err := remote.Dial(t.Context(), cfg); !errors.Is(err, remote.ErrHostKeyUnknown) {
			t.Fatalf("strict Dial of unknown host = %v, want ErrHostKeyUnknown", err)
		}
		cfg.HostKeyPolicy = remote.AcceptNew
		dial(t, cfg).Close()
		b, err := os.ReadFile(kh)
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(b), "\n"); n != 1 {
			t.Fatalf("known_hosts after accept-new has %d lines:\n%s", n, b)
		}
		cfg.HostKeyPolicy = remote.Strict
		dial(t, cfg).Close() // now known
		if b2, _ := os.ReadFile(kh); !bytes.Equal(b, b2) {
			t.Errorf("strict Dial changed known_hosts")
		}
	})

	t.Run("Auth_WrongKey", func(t *testing.T) {
		h := newHost(t)
		cfg := h.cfg
		_, other := remotetest.WriteKey(t, t.TempDir(), "id_other")
		cfg.Identities = []string{other}
		if _, err := remote.Dial(t.Context(), cfg); !errors.Is(err, remote.ErrAuth) {
			t.Fatalf("Dial with an unauthorized key = %v, want ErrAuth", err)
		}
	})

	t.Run("Auth_Agent", func(t *testing.T) {
		h := newHost(t)
		sock := startAgent(t, h.cfg.Identities[0])
		t.Setenv("SSH_AUTH_SOCK", sock)
		cfg := h.cfg
		cfg.Identities, cfg.Agent = nil, true
		c := dial(t, cfg)
		if _, err := c.Run(t.Context(), []string{"true"}, nil); err != nil {
			t.Fatal(err)
		}
		cfg.Agent = false
		if _, err := remote.Dial(t.Context(), cfg); !errors.Is(err, remote.ErrAuth) {
			t.Errorf("Dial with no credentials = %v, want ErrAuth", err)
		}
	})

	t.Run("Jump_ThroughItself", func(t *testing.T) {
		h := newHost(t)
		jump := dial(t, h.cfg)
		cfg := h.cfg
		cfg.Jump = jump
		c := dial(t, cfg)
		if res, err := c.Run(t.Context(), []string{"echo", "via jump"}, nil); err != nil || string(res.Stdout) != "via jump\n" {
			t.Fatalf("Run through jump host = %q, %v", res.Stdout, err)
		}
		c.Close()
		if _, err := jump.Run(t.Context(), []string{"true"}, nil); err != nil {
			t.Errorf("jump host unusable after closing the hop: %v", err)
		}
	})
}

func waitFile(t *testing.T, p string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(p)
		if s := strings.TrimSpace(string(b)); err == nil && s != "" {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not written within 30s", p)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func checkFile(t *testing.T, p string, want []byte, mode os.FileMode) {
	t.Helper()
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: %d bytes differ from the %d uploaded", p, len(got), len(want))
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != mode {
		t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), mode)
	}
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// noTemps fails t if an upload left a temporary file in dir.
func noTemps(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

func otherKey(t *testing.T) ssh.PublicKey {
	s, _ := remotetest.WriteKey(t, t.TempDir(), "k")
	return s.PublicKey()
}

func writeKnownHosts(t *testing.T, addr string, key ssh.PublicKey) string {
	p := filepath.Join(t.TempDir(), "known_hosts")
	line := knownhosts.Line([]string{knownhosts.Normalize(addr)}, key) + "\n"
	if err := os.WriteFile(p, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// startAgent serves an ssh-agent holding the key in file on a Unix socket
// and returns the socket's path.
func startAgent(t *testing.T, file string) string {
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ssh.ParseRawPrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	kr := agent.NewKeyring()
	if err := kr.Add(agent.AddedKey{PrivateKey: key}); err != nil {
		t.Fatal(err)
	}
	return serveAgent(t, kr)
}

// serveAgent serves kr as an ssh-agent on a socket until t ends.
func serveAgent(t *testing.T, kr agent.Agent) string {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { agent.ServeAgent(kr, c); c.Close() })
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return sock
}

// TestCheckAuth: a key to offer is found before any host is contacted, or
// the reason there is none is given.
func TestCheckAuth(t *testing.T) {
	dir := t.TempDir()
	_, ident := remotetest.WriteKey(t, dir, "id_ed25519")
	withKey := startAgent(t, ident)
	empty := serveAgent(t, agent.NewKeyring())
	tests := []struct {
		name string
		cfg  remote.Config
		sock string
		want string // "" for no error
	}{
		{"identity", remote.Config{Identities: []string{ident}}, "", ""},
		{"missing identity", remote.Config{Identities: []string{filepath.Join(dir, "none")}}, withKey, "read identity"},
		{"agent with a key", remote.Config{Agent: true}, withKey, ""},
		{"no agent", remote.Config{Agent: true}, "", "SSH_AUTH_SOCK is not set"},
		{"agent gone", remote.Config{Agent: true}, filepath.Join(dir, "gone.sock"), "does not answer"},
		{"agent without keys", remote.Config{Agent: true}, empty, "holds no keys"},
		{"agent not enabled", remote.Config{}, withKey, "ssh-agent not enabled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("SSH_AUTH_SOCK", tt.sock)
			if tt.sock == "" {
				os.Unsetenv("SSH_AUTH_SOCK")
			}
			err := remote.CheckAuth(tt.cfg)
			if tt.want == "" && err != nil || tt.want != "" && (!errors.Is(err, remote.ErrAuth) || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("CheckAuth = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestDial_CertAuthority_OpenSSH: a real sshd presents a host certificate;
// for every known_hosts below, Dial trusts the host exactly when OpenSSH's
// own client does (ssh -o UserKnownHostsFile=FILE true), and a refused
// certificate is reported as an unknown host.
func TestDial_CertAuthority_OpenSSH(t *testing.T) {
	h := sshfleet.Start(t, 1).Hosts[0]
	dir := t.TempDir()
	ca, _ := remotetest.WriteKey(t, dir, "ca")
	other, _ := remotetest.WriteKey(t, dir, "other_ca")
	authorized := func(s ssh.Signer) string { return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey()))) }
	plain, err := os.ReadFile(h.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, principal, known string
		ok                     bool
	}{
		{"CA for the address", h.Addr, "@cert-authority " + h.Addr + " " + authorized(ca), true},
		{"CA for a wildcard", h.Addr, "@cert-authority 127.0.1.*,!10.* " + authorized(ca), true},
		{"CA for a hashed name", h.Addr, "@cert-authority " + knownhosts.HashHostname(h.Addr) + " " + authorized(ca), true},
		{"CA and the plain key", h.Addr, "@cert-authority * " + authorized(ca) + "\n" + string(plain), true},
		{"the plain key alone", h.Addr, string(plain), true},
		{"another CA", h.Addr, "@cert-authority * " + authorized(other), false},
		{"CA for other hosts", h.Addr, "@cert-authority 10.* " + authorized(ca), false},
		{"revoked CA", h.Addr, "@cert-authority * " + authorized(ca) + "\n@revoked * " + authorized(ca), false},
		{"certificate for another name", "web01.example.com", "@cert-authority * " + authorized(ca), false},
	}
	signed := ""
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if signed != tt.principal {
				h.SignHostKey(t, ca, tt.principal)
				signed = tt.principal
			}
			kh := filepath.Join(t.TempDir(), "known_hosts")
			if err := os.WriteFile(kh, []byte(tt.known+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.CommandContext(t.Context(), "ssh", "-F", "none", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
				"-o", "UserKnownHostsFile="+kh, "-o", "GlobalKnownHostsFile=/dev/null", "-o", "ControlMaster=no",
				"-i", h.Identity, "root@"+h.Addr, "true")
			sshOut, sshErr := cmd.CombinedOutput()
			if (sshErr == nil) != tt.ok {
				t.Fatalf("test case is wrong: OpenSSH's ssh: %v\n%s", sshErr, sshOut)
			}
			cfg := h.Config()
			cfg.KnownHosts = []string{kh}
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			c, err := remote.Dial(ctx, cfg)
			if tt.ok {
				if err != nil {
					t.Fatalf("Dial = %v; ssh(1) trusts the host", err)
				}
				c.Close()
				return
			}
			if err == nil {
				c.Close()
				t.Fatalf("Dial trusted the host; ssh(1) refuses it:\n%s", sshOut)
			}
			if !errors.Is(err, remote.ErrHostKeyUnknown) && !errors.Is(err, remote.ErrHostKeyMismatch) {
				t.Errorf("Dial = %v, want a host key error", err)
			}
		})
	}
}
