package remote

import (
	"errors"
	"fmt"
	"strings"
)

// Error classes. Every error returned by this package for a transport or
// host-key problem wraps exactly one of the Dial classes, so that callers can
// tell "the host is down" from "someone may be in the middle".
var (
	// ErrUnreachable: the TCP connection could not be made (refused, no
	// route, connect timeout, jump host could not reach the target).
	ErrUnreachable = errors.New("host unreachable")
	// ErrHandshake: TCP connected but the SSH handshake did not complete
	// (timeout, protocol error, connection closed by the peer). Host-key and
	// authentication failures have their own classes.
	ErrHandshake = errors.New("ssh handshake failed")
	// ErrHostKeyUnknown: the host has no entry in known_hosts and the policy
	// is [Strict].
	ErrHostKeyUnknown = errors.New("host key unknown")
	// ErrHostKeyMismatch: known_hosts holds a different key for the host.
	// Either the host was reinstalled or the connection is intercepted.
	ErrHostKeyMismatch = errors.New("host key mismatch")
	// ErrAuth: the server rejected every credential offered.
	ErrAuth = errors.New("authentication failed")
	// ErrConnLost: an established connection failed (peer gone, keepalive
	// unanswered, channel could not be opened).
	ErrConnLost = errors.New("connection lost")
	// ErrExitMissing: the remote command ended without reporting an exit
	// status or signal; whether it succeeded is unknown.
	ErrExitMissing = errors.New("remote command ended without exit status")
	// ErrUpload: an upload failed; nothing was written under the
	// destination name.
	ErrUpload = errors.New("upload failed")
	// ErrNoAtomicRename: the SFTP server lacks posix-rename@openssh.com, so
	// the destination cannot be replaced atomically.
	ErrNoAtomicRename = errors.New("sftp server has no atomic rename (posix-rename@openssh.com)")
)

// ExitError reports a remote command that ran and did not exit with status
// 0. It is not a transport error: the connection is still usable.
type ExitError struct {
	Argv   []string
	Code   int    // exit status; -1 when killed by a signal
	Signal string // signal name without "SIG" (e.g. "KILL"), or ""
	Stderr []byte // the command's standard error (possibly truncated)
}

func (e *ExitError) Error() string {
	name := ""
	if len(e.Argv) > 0 {
		name = e.Argv[0]
	}
	msg := fmt.Sprintf("remote command %s exited with status %d", name, e.Code)
	if e.Signal != "" {
		msg = fmt.Sprintf("remote command %s killed by signal %s", name, e.Signal)
	}
	if s := lastLine(e.Stderr); s != "" {
		msg += ": " + s
	}
	return msg
}

// HostKeyError carries the details of a host-key failure. It wraps
// [ErrHostKeyUnknown] or [ErrHostKeyMismatch].
type HostKeyError struct {
	Host string // the known_hosts name checked, e.g. "[h]:2222"
	// Got is the SHA256 fingerprint of the key the server presented.
	Got string
	// Want holds the fingerprints known_hosts has for the host (empty when
	// the host is unknown), with the file and line of each.
	Want []string
	err  error
}

func (e *HostKeyError) Error() string {
	if len(e.Want) == 0 {
		return fmt.Sprintf("%v: %s presented %s, not in known_hosts", e.err, e.Host, e.Got)
	}
	return fmt.Sprintf("%v: %s presented %s, known_hosts has %s", e.err, e.Host, e.Got, strings.Join(e.Want, ", "))
}

func (e *HostKeyError) Unwrap() error { return e.err }

// isAuthError is the one place that matches x/crypto's untyped
// authentication failure by its text.
func isAuthError(err error) bool {
	return err != nil && strings.Contains(err.Error(), "unable to authenticate")
}

func lastLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
