// Package remotetest provides in-process SSH servers for testing package
// remote and its consumers without OpenSSH: [NewServer] listens on
// 127.0.0.1 with its own host key and an authorized client key, runs exec
// requests as real local processes under bash, and serves SFTP with
// pkg/sftp on the local file system. [Silent] is a listener that never
// speaks SSH, for handshake timeouts.
//
// It also holds the test-only pieces that production code must not use:
// [Insecure], the host-key bypass, and key generation ([WriteKey]).
//
// For real OpenSSH hosts see package sshfleet below it.
package remotetest
