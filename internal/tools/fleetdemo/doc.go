// Command fleetdemo shows a fleet rollout on this machine; it is what `make
// fleet-demo` runs. It starts a local fleet of real OpenSSH sshd hosts
// (remote/remotetest/sshfleet: 8 by default, each in its own PID and mount
// namespaces on its own 127.0.1.N), starts two programs with the runtime
// preloaded inside each host, and then runs build/ulpfleet (with its
// embedded agent) as an operator would: ping, plan, apply with host01 as the
// canary (the progress display shows on a terminal), status (the report),
// messages (the runtime's log in the processes of one host), revert and
// status again. Every host is torn down at the end.
//
// It checks what each step did against the programs themselves (the value
// they compute comes from the patched library function) and exits 1 when a
// step failed or a program did not change, or did not change back.
//
// It needs root, sshd, gcc and the artifacts of make (build/ulpfleet,
// build/libpulp.so.0).
package main
