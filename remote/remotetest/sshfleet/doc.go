// Package sshfleet starts a fleet of real OpenSSH sshd "hosts" on this
// machine for tests. Each host is /usr/sbin/sshd in its own mount and PID
// namespaces (unshare --mount --pid --fork --mount-proc), listening on its
// own loopback address 127.0.1.N port 22, with generated host and client
// keys, an empty /root/.bashrc (root's real one costs about a second per
// command here), and a private folder of the test's (Host.Root) mounted at
// [StateDir] inside the host, so that files written on one host are not
// seen by the others.
//
// Addresses are claimed with lock files under the system temp folder, so
// that several test binaries running at once get different hosts. Every
// host is killed, with everything running inside it, in t.Cleanup.
//
// Callers need root and sshd: use testenv.Require(t, testenv.Root,
// testenv.SSHD) first ([Start] does it too). Programs (make fleet-demo,
// make bench) start a fleet through [Run], which gives [Start] a testing.TB
// outside `go test`; [Host.Start] runs a program inside a host.
package sshfleet
