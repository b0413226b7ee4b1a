package remote

import (
	"context"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/ssh"
)

// Result is what a remote command produced.
type Result struct {
	Stdout, Stderr []byte
	// ExitCode is the command's exit status; -1 when it was killed by a
	// signal or no status was reported.
	ExitCode int
	// Truncated reports that stdout or stderr exceeded [Config.MaxOutput]
	// and was cut.
	Truncated bool
}

// Run runs argv on the host, quoted with [Quote] (and prefixed with
// `sudo -n --` when [Config.Sudo] is set), feeding it stdin (nil for none)
// and collecting its output.
//
// A command that ran and exited non-zero returns its Result together with an
// [*ExitError]. A transport failure returns an error wrapping
// [ErrConnLost]; a command ending without exit status returns
// [ErrExitMissing]. When ctx ends first the remote command is sent SIGTERM,
// the session is closed, and the error wraps ctx.Err().
func (c *Client) Run(ctx context.Context, argv []string, stdin io.Reader) (Result, error) {
	if len(argv) == 0 {
		return Result{}, errors.New("remote: run: empty argv")
	}
	cmd := c.command(argv)
	if err := ctx.Err(); err != nil {
		return Result{ExitCode: -1}, fmt.Errorf("remote: run %s on %s: %w", argv[0], c.addr, err)
	}
	s, err := c.ssh.NewSession()
	if err != nil {
		return Result{ExitCode: -1}, fmt.Errorf("remote: run %s on %s: %w: open session: %w", argv[0], c.addr, ErrConnLost, err)
	}
	defer s.Close()
	stdout := &capWriter{max: c.cfg.MaxOutput}
	stderr := &capWriter{max: c.cfg.MaxOutput}
	s.Stdout, s.Stderr = stdout, stderr
	if stdin != nil {
		s.Stdin = stdin
	}
	c.log.Debug("run", "cmd", cmd)
	if err := s.Start(cmd); err != nil {
		return Result{ExitCode: -1}, fmt.Errorf("remote: run %s on %s: %w: %w", argv[0], c.addr, ErrConnLost, err)
	}
	stop := context.AfterFunc(ctx, func() {
		_ = s.Signal(ssh.SIGTERM)
		s.Close()
	})
	err = s.Wait()
	cancelled := !stop()
	res := Result{Stdout: stdout.buf, Stderr: stderr.buf, Truncated: stdout.cut || stderr.cut}
	var ee *ssh.ExitError
	var me *ssh.ExitMissingError
	switch {
	case cancelled:
		res.ExitCode = -1
		return res, fmt.Errorf("remote: run %s on %s: %w", argv[0], c.addr, ctx.Err())
	case err == nil:
		return res, nil
	case errors.As(err, &ee):
		res.ExitCode = ee.ExitStatus()
		xe := &ExitError{Argv: argv, Code: ee.ExitStatus(), Stderr: res.Stderr}
		if ee.Signal() != "" {
			res.ExitCode, xe.Code, xe.Signal = -1, -1, ee.Signal()
		}
		return res, xe
	case errors.As(err, &me):
		res.ExitCode = -1
		return res, fmt.Errorf("remote: run %s on %s: %w", argv[0], c.addr, ErrExitMissing)
	default:
		res.ExitCode = -1
		return res, fmt.Errorf("remote: run %s on %s: %w: %w", argv[0], c.addr, ErrConnLost, err)
	}
}

// command builds the remote command line for argv.
func (c *Client) command(argv []string) string {
	if c.cfg.Sudo {
		argv = append([]string{"sudo", "-n", "--"}, argv...)
	}
	return Quote(argv)
}

// capWriter keeps the first max bytes written to it and drops the rest.
type capWriter struct {
	buf []byte
	max int
	cut bool
}

func (w *capWriter) Write(p []byte) (int, error) {
	room := w.max - len(w.buf)
	if room < len(p) {
		w.cut = true
		if room > 0 {
			w.buf = append(w.buf, p[:room]...)
		}
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	return len(p), nil
}
