// Package ledger owns the applied-patch ledger that the agent keeps inside a
// target process, and the planning of code writes on x86_64.
//
// A [Ledger] records the applied patches (id, container, target, time,
// labels, redirects) and, for every patched function, a [Stack] of
// replacements, newest last, together with the function's original entry
// bytes. The runtime (libpulp.so.0) only provides the memory for the ledger;
// its bytes are written and interpreted by the agent alone, in the format of
// [Encode] and [Decode].
//
// The planning functions [Apply], [Revert], [RevertAll] and [Replace] are
// pure: given a ledger and a way to read the current code bytes, they return
// the next ledger and the ordered memory writes ([Plan]) that take the code
// from the state the old ledger describes to the state of the new one. They
// never write anything; the caller (the trigger) performs the writes with
// every thread stopped, pad bytes first and entry bytes last.
//
// The pad mechanism (functions built with -fpatchable-function-entry=16,14):
// the 14 bytes before the entry hold `ff 25 00 00 00 00` (jmp *0(%rip))
// followed by the 8-byte absolute address of the newest active replacement;
// the 2 entry bytes (after endbr64 when present) become `eb f0` (or `eb ec`
// after endbr64), a short jump back to the pad. Reverting the last patch of
// a function restores its original entry bytes. The newest active patch
// wins; reverting patches in any order falls back to the newest one still
// active.
//
// The entry mechanism (functions built without the pad, as distributions
// ship glibc and OpenSSL): the 5 bytes at the entry (after endbr64 when
// present) become `e9 rel32`, a jump straight to the newest active
// replacement, which must lie within ±2 GiB ([ReachError] otherwise: the
// trigger then passes a trampoline near the function as the replacement's
// address). The original 5 bytes are kept in the stack and
// written back when its last entry is reverted; stacking and out-of-order
// revert rewrite the rel32. A function that has the pad gets the pad
// mechanism; one without it gets the entry mechanism when its first
// instructions allow it (livepatch/insn.CheckHead; the packer decoded the
// whole function). A thread stopped inside the 5 bytes must not be resumed
// there while they change: [Plan.Splits] tells the trigger, which resumes
// the threads and retries.
//
// This package does no I/O and knows nothing of processes; livepatch/target
// reads the ledger bytes of a running process, the trigger writes them.
package ledger
