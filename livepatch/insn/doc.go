// Package insn decodes x86-64 machine code (golang.org/x/arch/x86/x86asm)
// to decide whether a function built without the patchable pad can be
// redirected by overwriting its entry with a 5-byte `jmp rel32`: the entry
// mechanism (container.MechEntry) used for distribution libraries such as
// Debian's glibc and OpenSSL.
//
// [Check] decodes a whole function (its symbol's bytes) and is what the
// packer and `ulp livepatchable` use; [CheckHead] decodes only the
// instructions the jump overlaps and is what the agent re-checks in the
// running process, where the function size is not at hand. Both refuse with
// a *[RefusedError] that says why.
//
// The agent never executes the overwritten instructions elsewhere: a thread
// stopped inside the 5 bytes is resumed and the write retried. So an
// instruction in the head is acceptable when it can be left mid-way only at
// an instruction boundary that the agent sees: calls and system calls that
// end inside the 5 bytes are refused, because a return address or a thread
// blocked in the kernel would point into rewritten bytes.
package insn
