package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"strconv"
	"strings"

	"ulp/inventory"
	"ulp/remote"
)

// Conn is the connection to one host that a rollout uses.
// *remote.Client satisfies it.
type Conn interface {
	// Run runs argv on the host. A command that ran and exited non-zero
	// returns a *remote.ExitError (and its output in the Result); other
	// errors are transport errors.
	Run(ctx context.Context, argv []string, stdin io.Reader) (remote.Result, error)
	// Upload writes data to the absolute path dst atomically, skipping the
	// transfer when the file there already has data's sha256.
	Upload(ctx context.Context, data []byte, dst string, mode fs.FileMode) (remote.Uploaded, error)
	// Close releases the connection.
	Close() error
}

// Dialer connects to hosts.
type Dialer interface {
	// Dial connects to the host of hp, through hp.Jump when it is set: the
	// plan resolved the jump host once, so what the plan shows is what is
	// dialled.
	Dial(ctx context.Context, hp *HostPlan) (Conn, error)
}

// JumpVar is the host variable naming the jump host through which a host
// is reached, "[USER@]HOST[:PORT]" (OpenSSH's ProxyJump), overriding
// [Options.Jump]; "none" reaches the host directly.
const JumpVar = "ulp_jump"

// JumpFor returns the jump host of h: its [JumpVar], else def; "" when h
// is reached directly.
func JumpFor(h inventory.Host, def string) string {
	if v, ok := h.Vars[JumpVar]; ok {
		s, _ := v.(string)
		def = s
	}
	if def == "none" {
		return ""
	}
	return def
}

// ParseJump splits a jump host "[USER@]HOST[:PORT]" into its user (""
// when not given) and "HOST:PORT" (port 22 when not given).
func ParseJump(spec string) (user, addr string, err error) {
	host := spec
	if i := strings.LastIndexByte(spec, '@'); i >= 0 {
		user, host = spec[:i], spec[i+1:]
		if user == "" || strings.ContainsAny(user, " \t\n:@") {
			return "", "", fmt.Errorf("jump host %q: bad user", spec)
		}
	}
	if h, p, err := net.SplitHostPort(host); err == nil {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 || h == "" {
			return "", "", fmt.Errorf("jump host %q: bad port", spec)
		}
		return user, host, nil
	}
	if host == "" || strings.ContainsAny(host, " \t\n/[]") {
		return "", "", fmt.Errorf("jump host %q: want [USER@]HOST[:PORT]", spec)
	}
	return user, net.JoinHostPort(host, "22"), nil
}

// SSHDialer dials hosts over SSH with package remote. Base holds the
// settings shared by every host (known_hosts, identities, timeouts); Dial
// fills in the host's address and, when the inventory names one, its user.
type SSHDialer struct {
	Base remote.Config
}

// Dial connects to the host of hp, through its jump host (HostPlan.Jump)
// when it has one: a connection to the jump host is made for this host
// alone and closed with its own.
func (d SSHDialer) Dial(ctx context.Context, hp *HostPlan) (Conn, error) {
	h := hp.Host
	cfg := d.Base
	cfg.Addr = h.Address()
	if h.User != "" {
		cfg.User = h.User
	}
	spec := hp.Jump
	if spec == "" {
		c, err := remote.Dial(ctx, cfg)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
	user, addr, err := ParseJump(spec)
	if err != nil {
		return nil, err
	}
	jcfg := d.Base
	jcfg.Addr = addr
	if user != "" {
		jcfg.User = user
	}
	jc, err := remote.Dial(ctx, jcfg)
	if err != nil {
		return nil, fmt.Errorf("jump host %s: %w", spec, err)
	}
	cfg.Jump = jc
	c, err := remote.Dial(ctx, cfg)
	if err != nil {
		jc.Close()
		return nil, fmt.Errorf("via jump host %s: %w", spec, err)
	}
	return &jumpedConn{Client: c, jump: jc}, nil
}

// jumpedConn is a connection through a jump host; Close closes both.
type jumpedConn struct {
	*remote.Client
	jump *remote.Client
}

func (c *jumpedConn) Close() error {
	return errors.Join(c.Client.Close(), c.jump.Close())
}
