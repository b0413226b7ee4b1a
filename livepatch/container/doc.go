// Package container reads and writes livepatch containers: shared objects
// that carry their patch description in the non-loaded ELF sections .ulp
// (apply), .ulp.rev (revert) and .ulp.comments. The binary layout is
// specified in docs/container-format.md. Reading is pure: it never looks at
// a process.
package container
