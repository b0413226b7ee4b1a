// Package remote is ulp's SSH transport: it dials one host over SSH with
// strict host-key checking, runs commands there with remote exit codes kept
// apart from transport errors, and uploads files over SFTP atomically and
// content-addressed.
//
// remote owns the connection to a single host. It does not know about
// inventories, batches or rollouts (package fleet does), nor about what the
// uploaded files are (package agentbin holds the agent binary).
//
// # Connecting
//
// [Dial] opens a [Client]. The TCP connect is bounded by
// [Config.ConnectTimeout] and the whole SSH handshake (key exchange, host-key
// check, authentication) by [Config.HandshakeTimeout], through a deadline on
// the connection and a close on context cancellation, which also works for
// connections tunnelled through a jump host ([Config.Jump]). Host keys are
// checked against known_hosts files; an unknown host is refused unless
// [Config.HostKeyPolicy] is [AcceptNew], in which case one line is appended to
// the first known_hosts file. The host-key algorithms offered are those
// already known for the host, so a known_hosts written by OpenSSH's ssh works.
// Authentication uses the key files in [Config.Identities] (and only them,
// like IdentitiesOnly) or else the ssh-agent at SSH_AUTH_SOCK. A keepalive
// goroutine closes a connection whose peer stops answering.
//
// # Errors
//
// Failures are classified with sentinels for errors.Is: [ErrUnreachable],
// [ErrHandshake], [ErrHostKeyUnknown], [ErrHostKeyMismatch], [ErrAuth],
// [ErrConnLost], [ErrExitMissing], [ErrUpload] and [ErrNoAtomicRename]. A
// command that ran and exited non-zero, or was killed by a signal, returns
// an [*ExitError]: the remote command failed, the transport did not.
//
// # Commands
//
// [Client.Run] takes an argv, never a command line: [Quote] is the single
// function that turns an argv into the string the remote shell parses. A
// caller that wants root puts `sudo -n --` in the argv itself.
//
// # Uploads
//
// [Client.Upload] skips the transfer when the file on the host already has
// the same content (its BLAKE2b-512 by b2sum there, else its SHA-256 by
// sha256sum). Otherwise it writes a temporary file next to the destination
// (gzipped and decompressed there when that pays), syncs it
// (fsync@openssh.com, when offered), sets its mode, verifies its size and
// digest on the host, and renames it over the
// destination with posix-rename@openssh.com. No partial file ever appears
// under the destination name. Uploads go through SFTP as the login user.
package remote
