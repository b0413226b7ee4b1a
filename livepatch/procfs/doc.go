// Package procfs reads what Linux publishes about a process under /proc
// without stopping it: the memory map (maps), status, the thread list
// (task), comm, exe and the auxiliary vector, and the process's memory
// through process_vm_readv (a plain read of a running process, not ptrace);
// and the facts about a process that several packages ask: whether it is
// gone ([Gone], [LeaderExited], [Status.Dead]), who owns and who traces it
// ([Owner], [Tracer], [Name]) and Yama's ptrace_scope ([PtraceScope]); and
// the one advisor that turns an EPERM of ptrace access into what to do
// ([PtraceAdvice]).
//
// The Parse* functions are pure parsers of the files' bytes, safe on hostile
// input; the other functions read the files of a live process. Errors keep
// the underlying errno: test them with errors.Is against [ErrNoProcess] or
// fs.ErrPermission.
//
// procfs never writes to a process and never attaches to one: that belongs
// to livepatch/ptrace.
package procfs
