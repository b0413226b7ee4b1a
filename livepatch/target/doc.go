// Package target is a running process seen from outside, without stopping
// it: which processes preload the runtime (libpulp.so.0), the ELF objects a
// process has mapped (path, load bias, build-id read from the mapped
// PT_NOTE), where the runtime's ulp_abi block is, and the consistent reads
// of that block, of the ledger and of the message ring, each retried under
// its sequence counter.
//
// It is the one Go owner of the block's seqlock protocol (seqlock.go): the
// reads, and beside them the writes of the ledger and of a ring line
// ([Process.LedgerWriter], [Process.AppendRing]), which go through a
// [Writer] the caller holds (the trigger's seized *ptrace.Process).
//
// Otherwise everything here reads: /proc files and process_vm_readv.
// Nothing attaches to or stops the process; that is the trigger's job,
// through livepatch/ptrace. The ledger's format is livepatch/ledger's, the
// block's layout livepatch/abi's.
package target
