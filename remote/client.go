package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Client is a connection to one host. It is safe for concurrent use:
// commands and uploads are multiplexed over the one SSH connection (stay
// under the server's MaxSessions, 10 by default). Close releases it.
type Client struct {
	cfg  Config
	addr string // host:port dialled
	ssh  *ssh.Client
	log  *slog.Logger

	sftpMu sync.Mutex
	sftp   *sftp.Client
	// noGzip is set once the host proved to have no gzip: uploads then go
	// uncompressed.
	noGzip atomic.Bool

	stopKeepalive chan struct{}
	keepaliveDone chan struct{}
	closeOnce     sync.Once
	closeErr      error
}

// Dial connects to cfg.Addr and authenticates. Every failure wraps one of
// [ErrUnreachable], [ErrHandshake], [ErrHostKeyUnknown],
// [ErrHostKeyMismatch] or [ErrAuth], plus ctx's error when ctx ended first.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	c := cfg.withDefaults()
	addr := hostPort(c.Addr)
	name := knownName(addr)

	hostKey := c.HostKeyCallback
	var algos []string
	if hostKey == nil {
		hk, err := newHostKeys(c.KnownHosts, c.HostKeyPolicy)
		if err != nil {
			return nil, fmt.Errorf("remote: dial %s: %w", addr, err)
		}
		hostKey = hk.callback(name)
		algos = hk.algorithms(name)
	}
	auth, closeAuth, err := authMethods(&c)
	if err != nil {
		return nil, fmt.Errorf("remote: dial %s: %w", addr, err)
	}
	defer closeAuth()

	conn, err := dialTCP(ctx, &c, addr)
	if err != nil {
		return nil, fmt.Errorf("remote: dial %s: %w: %w", addr, ErrUnreachable, err)
	}
	sc, err := handshake(ctx, conn, name, &ssh.ClientConfig{
		User:              c.User,
		Auth:              auth,
		HostKeyCallback:   hostKey,
		HostKeyAlgorithms: algos,
	}, c.HandshakeTimeout)
	var ne *ssh.AlgorithmNegotiationError
	if len(algos) > 0 && errors.As(err, &ne) && ne.What == "host key" {
		// known_hosts has keys for the host, but the host offers none of
		// their types: its keys were replaced.
		err = &HostKeyError{Host: knownhosts.Normalize(name), Got: "keys of types " + strings.Join(ne.RequestedAlgorithms, ","),
			Want: algos, err: ErrHostKeyMismatch}
	}
	if err != nil {
		return nil, fmt.Errorf("remote: dial %s: %w", addr, err)
	}
	cl := &Client{cfg: c, addr: addr, ssh: sc, log: c.Logger.With("host", addr)}
	if c.KeepaliveInterval > 0 {
		cl.stopKeepalive = make(chan struct{})
		cl.keepaliveDone = make(chan struct{})
		go cl.keepalive()
	}
	return cl, nil
}

func dialTCP(ctx context.Context, c *Config, addr string) (net.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, c.ConnectTimeout)
	defer cancel()
	if c.Jump != nil {
		return c.Jump.ssh.DialContext(dctx, "tcp", addr)
	}
	d := net.Dialer{KeepAlive: 15 * time.Second}
	return d.DialContext(dctx, "tcp", addr)
}

// handshake runs the SSH handshake on conn, bounded by timeout and ctx. The
// deadline covers direct TCP connections; the close-on-timer covers
// connections through a jump host, which support no deadlines.
func handshake(ctx context.Context, conn net.Conn, name string, cfg *ssh.ClientConfig, timeout time.Duration) (*ssh.Client, error) {
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_ = conn.SetDeadline(time.Now().Add(timeout)) // unsupported through a jump host
	stop := context.AfterFunc(hctx, func() { conn.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(conn, name, cfg)
	fired := !stop()
	if err == nil && fired {
		sc.Close()
		err = hctx.Err()
	}
	if err != nil {
		conn.Close()
		return nil, classifyHandshake(err, hctx.Err(), timeout)
	}
	_ = conn.SetDeadline(time.Time{})
	return ssh.NewClient(sc, chans, reqs), nil
}

func classifyHandshake(err, ctxErr error, timeout time.Duration) error {
	var hke *HostKeyError
	switch {
	case errors.As(err, &hke):
		return hke
	case isAuthError(err):
		return fmt.Errorf("%w: %w", ErrAuth, err)
	case ctxErr != nil:
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			return fmt.Errorf("%w: not done after %v: %w", ErrHandshake, timeout, ctxErr)
		}
		return fmt.Errorf("%w: %w", ErrHandshake, ctxErr)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("%w: not done after %v: %w", ErrHandshake, timeout, err)
	}
	return fmt.Errorf("%w: %w", ErrHandshake, err)
}

// authMethods returns the client's credentials and a func releasing them
// (the agent connection), to call once the handshake is over.
func authMethods(c *Config) ([]ssh.AuthMethod, func(), error) {
	signers := append([]ssh.Signer(nil), c.Signers...)
	for _, f := range c.Identities {
		s, err := loadIdentity(f)
		if err != nil {
			return nil, nil, err
		}
		signers = append(signers, s)
	}
	if len(signers) > 0 {
		return []ssh.AuthMethod{ssh.PublicKeys(signers...)}, func() {}, nil
	}
	if !c.Agent {
		return nil, nil, fmt.Errorf("%w: no identity file and ssh-agent not enabled", ErrAuth)
	}
	sock := os.Getenv("SSH_AUTH_SOCK")
	if sock == "" {
		return nil, nil, fmt.Errorf("%w: ssh-agent requested but SSH_AUTH_SOCK is not set", ErrAuth)
	}
	ac, err := net.Dial("unix", sock)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: connect to ssh-agent: %w", ErrAuth, err)
	}
	ag := agent.NewClient(ac)
	return []ssh.AuthMethod{ssh.PublicKeysCallback(ag.Signers)}, func() { ac.Close() }, nil
}

// CheckAuth checks, without contacting any host, that cfg has a key to
// offer: each identity file parses, or, without identities, the ssh-agent
// at $SSH_AUTH_SOCK answers and holds at least one key. Its errors wrap
// [ErrAuth]; a fleet run calls it once instead of failing every host.
func CheckAuth(cfg Config) error {
	for _, f := range cfg.Identities {
		if _, err := loadIdentity(f); err != nil {
			return fmt.Errorf("%w: %w", ErrAuth, err)
		}
	}
	if len(cfg.Identities) > 0 || len(cfg.Signers) > 0 {
		return nil
	}
	if !cfg.Agent {
		return fmt.Errorf("%w: no identity file and ssh-agent not enabled", ErrAuth)
	}
	sock := os.Getenv("SSH_AUTH_SOCK")
	if sock == "" {
		return fmt.Errorf("%w: no identity file given and no ssh-agent (SSH_AUTH_SOCK is not set)", ErrAuth)
	}
	ac, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		return fmt.Errorf("%w: no identity file given and the ssh-agent does not answer: %w", ErrAuth, err)
	}
	defer ac.Close()
	_ = ac.SetDeadline(time.Now().Add(5 * time.Second))
	keys, err := agent.NewClient(ac).List()
	if err != nil {
		return fmt.Errorf("%w: ssh-agent at %s: %w", ErrAuth, sock, err)
	}
	if len(keys) == 0 {
		return fmt.Errorf("%w: no identity file given and the ssh-agent at %s holds no keys (ssh-add adds one)", ErrAuth, sock)
	}
	return nil
}

// identityCache holds parsed key files: signers are stateless, so every
// connection of a fleet run can share one.
var identityCache sync.Map // path -> ssh.Signer

func loadIdentity(path string) (ssh.Signer, error) {
	if s, ok := identityCache.Load(path); ok {
		return s.(ssh.Signer), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read identity: %w", err)
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		var pm *ssh.PassphraseMissingError
		if errors.As(err, &pm) {
			return nil, fmt.Errorf("identity %s is encrypted; load it into ssh-agent instead: %w", path, err)
		}
		return nil, fmt.Errorf("parse identity %s: %w", path, err)
	}
	identityCache.Store(path, s)
	return s, nil
}

// keepalive sends keepalive@openssh.com every interval and closes the
// connection after KeepaliveMissed unanswered ones. It stops on Close or
// when the connection ends.
func (c *Client) keepalive() {
	defer close(c.keepaliveDone)
	t := time.NewTicker(c.cfg.KeepaliveInterval)
	defer t.Stop()
	missed := 0
	reply := make(chan error, 1)
	pending := false
	for {
		select {
		case <-c.stopKeepalive:
			return
		case err := <-reply:
			pending = false
			if err != nil {
				return // connection closed
			}
			missed = 0
		case <-t.C:
			if pending {
				missed++
				if missed >= c.cfg.KeepaliveMissed {
					c.log.Warn("keepalive unanswered, closing connection", "missed", missed)
					c.ssh.Close()
					return
				}
				continue
			}
			pending = true
			go func() {
				_, _, err := c.ssh.SendRequest("keepalive@openssh.com", true, nil)
				reply <- err
			}()
		}
	}
}

// Addr returns the host:port this Client is connected to.
func (c *Client) Addr() string { return c.addr }

// Close closes the connection and everything multiplexed over it, and
// stops the keepalive goroutine. It does not close [Config.Jump].
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.sftpMu.Lock()
		if c.sftp != nil {
			c.sftp.Close()
		}
		c.sftpMu.Unlock()
		c.closeErr = c.ssh.Close()
		if c.stopKeepalive != nil {
			close(c.stopKeepalive)
			<-c.keepaliveDone
		}
		if errors.Is(c.closeErr, net.ErrClosed) || errors.Is(c.closeErr, io.EOF) {
			c.closeErr = nil
		}
	})
	return c.closeErr
}
