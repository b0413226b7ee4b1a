package fleet

import (
	"context"
	"io"
	"io/fs"

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
	Dial(ctx context.Context, h inventory.Host) (Conn, error)
}

// SSHDialer dials hosts over SSH with package remote. Base holds the
// settings shared by every host (known_hosts, identities, timeouts, sudo);
// Dial fills in the host's address and, when the inventory names one, its
// user.
type SSHDialer struct {
	Base remote.Config
}

// Dial connects to h.
func (d SSHDialer) Dial(ctx context.Context, h inventory.Host) (Conn, error) {
	cfg := d.Base
	cfg.Addr = h.Address()
	if h.User != "" {
		cfg.User = h.User
	}
	c, err := remote.Dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return c, nil
}
