package remote

import (
	"log/slog"
	"net"
	"strconv"
	"time"

	"golang.org/x/crypto/ssh"
)

// HostKeyPolicy says what to do with a host that known_hosts does not list.
type HostKeyPolicy int

const (
	// Strict refuses unknown hosts with [ErrHostKeyUnknown].
	Strict HostKeyPolicy = iota
	// AcceptNew trusts an unknown host on first use and appends its key to
	// the first known_hosts file. A changed key is still refused.
	AcceptNew
)

// Defaults applied by [Dial] to zero fields of [Config].
const (
	DefaultConnectTimeout    = 10 * time.Second
	DefaultHandshakeTimeout  = 15 * time.Second
	DefaultKeepaliveInterval = 15 * time.Second
	DefaultKeepaliveMissed   = 3
	DefaultMaxOutput         = 16 << 20
)

// Config describes how to reach and authenticate to one host.
type Config struct {
	// Addr is "host" or "host:port" (port 22 by default).
	Addr string
	// User is the login name ("root" when empty).
	User string

	// KnownHosts lists known_hosts files. With AcceptNew, new keys are
	// appended to the first one. Required unless HostKeyCallback is set.
	KnownHosts    []string
	HostKeyPolicy HostKeyPolicy
	// HostKeyCallback replaces known_hosts checking entirely. Only tests set
	// it (remotetest.Insecure); production code uses KnownHosts.
	HostKeyCallback ssh.HostKeyCallback

	// Identities are private key files (unencrypted). When any are given,
	// only they are offered, as with OpenSSH's IdentitiesOnly.
	Identities []string
	// Signers are keys already in memory, offered like Identities.
	Signers []ssh.Signer
	// Agent, when true and no identities are given, authenticates with the
	// ssh-agent at $SSH_AUTH_SOCK.
	Agent bool

	// Jump, when set, is an established connection to a jump host through
	// which this host is reached (OpenSSH's ProxyJump). The jump Client is
	// not owned: closing this Client leaves it open.
	Jump *Client

	// ConnectTimeout bounds the TCP connect (DefaultConnectTimeout).
	ConnectTimeout time.Duration
	// HandshakeTimeout bounds the SSH handshake including host-key check and
	// authentication (DefaultHandshakeTimeout).
	HandshakeTimeout time.Duration
	// KeepaliveInterval is the period of keepalive@openssh.com requests
	// (DefaultKeepaliveInterval); negative disables them. After
	// KeepaliveMissed unanswered intervals the connection is closed.
	KeepaliveInterval time.Duration
	KeepaliveMissed   int

	// MaxOutput caps the bytes kept of a command's stdout and of its stderr
	// (DefaultMaxOutput); the rest is read and dropped.
	MaxOutput int

	// Logger receives debug logs; nil discards them.
	Logger *slog.Logger
}

func (cfg *Config) withDefaults() Config {
	c := *cfg
	if c.User == "" {
		c.User = "root"
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.KeepaliveInterval == 0 {
		c.KeepaliveInterval = DefaultKeepaliveInterval
	}
	if c.KeepaliveMissed <= 0 {
		c.KeepaliveMissed = DefaultKeepaliveMissed
	}
	if c.MaxOutput <= 0 {
		c.MaxOutput = DefaultMaxOutput
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// hostPort returns addr with ":22" added when it has no port.
func hostPort(addr string) string {
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr
	}
	return net.JoinHostPort(addr, strconv.Itoa(22))
}
