// Package ptrace owns every ptrace(2) and wait4(2) call of ulp.
//
// A Process is a target seized with PTRACE_SEIZE: all of its threads are
// traced but keep running until the caller interrupts some or all of them.
// Every ptrace request of a Process is issued by one tracer: a goroutine
// locked to one OS thread, never unlocked (the kernel ties a tracee to the
// tracing thread, not to the Go program). Seize gives a process a tracer of
// its own, ended by Detach; a Tracer seizes processes one at a time on a
// thread it keeps across them, detaching each explicitly (running threads
// are stopped one at a time for their PTRACE_DETACH). When a thread exits,
// the kernel detaches every thread it still holds: Detach falls back on
// that, and an agent killed at any moment leaves its targets running,
// untraced. Events are collected with wait4 on each known thread id (never
// -1), so that several Processes in one program, and a program that is
// also the target's parent, never take each other's stops.
//
// Memory is written with pwrite on /proc/PID/mem (reads are
// livepatch/procfs's): the kernel writes through page protections, so the
// target's mappings never change, and the file stays bound to the memory
// the process had when it was seized, so nothing is written into a program
// it executed since.
//
// The package never sets PTRACE_O_EXITKILL: a target must survive the death
// of the agent at any moment, and the kernel detaches every tracee when the
// tracer exits. A second agent's PTRACE_SEIZE fails with EPERM while one
// holds a process, which makes holding a Process an exclusive lock.
package ptrace
