// Package ptrace owns every ptrace(2) and wait4(2) call of ulp.
//
// A Process is a target seized with PTRACE_SEIZE: all of its threads are
// traced but keep running until the caller interrupts some or all of them.
// Each Process has its own tracer: one goroutine locked to one OS thread,
// never unlocked, that issues every ptrace request for that process (the
// kernel ties a tracee to the tracing thread, not to the Go program). The
// thread exits with the goroutine after Detach, and the kernel then detaches
// every thread still attached: Detach stops nothing. Events are collected
// with wait4 on each known thread id (never -1), so that several Processes
// in one program, and a program that is also the target's parent, never
// take each other's stops.
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
