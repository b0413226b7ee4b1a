// Package trigger applies, reverts and replaces livepatches in one running
// process that preloads the runtime (libpulp.so.0), and reports the outcome
// as a report.Process.
//
// The sequence, for one process: preflight without stopping anything
// (runtime present and READY, target object loaded with the right build-id,
// patch not yet applied, container valid); seize every thread
// (livepatch/ptrace), which is also the lock against a second agent; have
// one interrupted thread load the container inside the process through the
// runtime's entry stub while the other threads run (the injected call);
// fill in data and TLS references; then stop every thread once, write the
// planned code bytes (livepatch/ledger) and the ledger, and detach.
//
// An injected call never needs the agent to finish: the hijacked thread
// returns to its own context from the stub, so a SIGKILL of the agent at any
// moment leaves a working process.
//
// A [Session] is one run of the agent (ulp trigger, whole host or one
// process): it owns the workers and their tracer threads ([Session.Run]),
// the patch-on-start folder's update ([Session.Activate]) and the checked
// containers, each opened, read and verified under the trust policy once
// for every process of the run. [Run] is one trigger in a session of its
// own.
//
// The process opens the container itself, in its own root (a chroot or
// another mount namespace may differ from the agent's): through
// /proc/AGENT/fd/N, the agent's open descriptor of the checked file, when
// the process can open it; else by the agent's path when that names the
// same file in the process's root; else the trigger is an ERROR that says
// why (containerPath).
package trigger
