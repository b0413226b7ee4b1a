package remote

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

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

// Run runs argv on the host, quoted with [Quote], feeding it stdin (nil for
// none) and collecting its output. Anything the login shell prints before the
// command starts (rc-file noise) is dropped from Stdout. stdin is read until
// EOF or until the command ends; Run returns only after the last Read on it
// has returned, so it must not block forever (a bytes.Reader or a file, not
// a terminal).
//
// A command that ran and exited non-zero returns its Result together with an
// [*ExitError]. A transport failure returns an error wrapping
// [ErrConnLost]; a command ending without exit status returns
// [ErrExitMissing]. When ctx ends first, the remote command and its process
// group are sent SIGTERM (through a signal request and through kill(1) in a
// second session, since OpenSSH ignores signal requests in root sessions;
// a command cancelled as it starts is given up to 5 s for its PID line to
// arrive), the session is closed, and the error wraps ctx.Err().
func (c *Client) Run(ctx context.Context, argv []string, stdin io.Reader) (Result, error) {
	if len(argv) == 0 {
		return Result{}, errors.New("remote: run: empty argv")
	}
	if err := ctx.Err(); err != nil {
		return Result{ExitCode: -1}, fmt.Errorf("remote: run %s on %s: %w", argv[0], c.addr, err)
	}
	s, err := c.ssh.NewSession()
	if err != nil {
		return Result{ExitCode: -1}, fmt.Errorf("remote: run %s on %s: %w: open session: %w", argv[0], c.addr, ErrConnLost, err)
	}
	var stdinCopy sync.WaitGroup
	defer func() {
		s.Close() // unblocks a pending stdin write
		stdinCopy.Wait()
	}()
	stdout := &capWriter{max: c.cfg.MaxOutput}
	stderr := &capWriter{max: c.cfg.MaxOutput}
	pf := newPIDFilter(stdout, pidMarker())
	s.Stdout, s.Stderr = pf, stderr
	// stdin is copied by our own goroutine, not x/crypto's: a command that
	// exits without reading its stdin makes the copy fail, and that is no
	// transport error.
	var stdinW io.WriteCloser
	if stdin != nil {
		if stdinW, err = s.StdinPipe(); err != nil {
			return Result{ExitCode: -1}, fmt.Errorf("remote: run %s on %s: %w", argv[0], c.addr, err)
		}
	}
	cmd := command(argv, pf.marker)
	c.log.Debug("run", "cmd", cmd)
	if err := s.Start(cmd); err != nil {
		return Result{ExitCode: -1}, fmt.Errorf("remote: run %s on %s: %w: %w", argv[0], c.addr, ErrConnLost, err)
	}
	if stdinW != nil {
		stdinCopy.Go(func() {
			_, _ = io.Copy(stdinW, stdin)
			stdinW.Close()
		})
	}
	// The Wait goroutine ends when the session does: normally, or at the
	// latest when the Client is closed.
	waited := make(chan error, 1)
	go func() { waited <- s.Wait() }()
	select {
	case err = <-waited:
	case <-ctx.Done():
		cancelled := fmt.Errorf("remote: run %s on %s: %w", argv[0], c.addr, ctx.Err())
		// The PID line may still be on its way (the command started
		// moments ago): without the PID only the signal request is sent,
		// which OpenSSH ignores in root sessions.
		select {
		case <-pf.known:
		case <-waited:
			return Result{ExitCode: -1}, cancelled
		case <-time.After(cancelGrace):
		}
		c.cancelRemote(s, pf.pid.Load())
		select {
		case <-waited:
		case <-time.After(cancelGrace):
		}
		return Result{ExitCode: -1}, cancelled
	}
	pf.flush()
	res := Result{Stdout: stdout.buf, Stderr: stderr.buf, Truncated: stdout.cut || stderr.cut}
	var ee *ssh.ExitError
	var me *ssh.ExitMissingError
	switch {
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

// cancelGrace bounds how long a cancelled Run waits for the session to end.
const cancelGrace = 5 * time.Second

// cancelRemote stops a running command: a signal request (honoured by
// OpenSSH for non-root logins only), kill(1) of the command and its process
// group from a second session, then closing the channel.
func (c *Client) cancelRemote(s *ssh.Session, pid int64) {
	_ = s.Signal(ssh.SIGTERM)
	if pid > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), cancelGrace)
		p := strconv.FormatInt(pid, 10)
		_, _ = c.Run(ctx, []string{"kill", "-TERM", "--", "-" + p, p}, nil)
		cancel()
	}
	s.Close()
}

// pidMarker returns a fresh marker for the line with which a command
// announces its PID: "ulp-pid-" and 16 random hex digits, so that no
// login-shell output can forge it.
func pidMarker() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "ulp-pid-" + hex.EncodeToString(b[:]) + ":"
}

// command builds the remote command line for argv: a POSIX sh that prints
// marker and its PID (kept by exec) and execs argv. A caller that wants
// sudo puts it in argv.
func command(argv []string, marker string) string {
	return Quote(append([]string{"sh", "-c", `echo ` + marker + `$$; exec "$@"`, "sh"}, argv...))
}

// pidFilter drops stdout up to and including the PID line, recording the
// PID, and passes the rest through. Without a PID line in the first 64 KiB
// (the shell failed before it), everything is passed through.
type pidFilter struct {
	w      io.Writer
	marker string
	buf    []byte // everything before the PID line
	scan   int    // buf[:scan] holds only complete lines without the marker
	done   bool
	pid    atomic.Int64
	known  chan struct{} // closed once done: pid is set, or will never be
}

func newPIDFilter(w io.Writer, marker string) *pidFilter {
	return &pidFilter{w: w, marker: marker, known: make(chan struct{})}
}

func (f *pidFilter) Write(p []byte) (int, error) {
	if f.done {
		return f.w.Write(p)
	}
	f.buf = append(f.buf, p...)
	for {
		i := bytes.IndexByte(f.buf[f.scan:], '\n')
		if i < 0 {
			break
		}
		line := f.buf[f.scan : f.scan+i]
		f.scan += i + 1
		if j := bytes.Index(line, []byte(f.marker)); j >= 0 {
			if pid, err := strconv.ParseInt(string(line[j+len(f.marker):]), 10, 64); err == nil {
				f.pid.Store(pid)
			}
			rest := f.buf[f.scan:]
			f.done, f.buf = true, nil
			close(f.known)
			if len(rest) > 0 {
				f.w.Write(rest)
			}
			return len(p), nil
		}
	}
	if len(f.buf) > 64<<10 { // no marker in sight: not our shell's output
		f.flush()
	}
	return len(p), nil
}

func (f *pidFilter) flush() {
	if !f.done {
		f.done = true
		close(f.known)
		f.w.Write(f.buf)
		f.buf = nil
	}
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
