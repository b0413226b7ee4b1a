// Package elfsym reads what live patching needs from an ELF object on disk:
// its GNU build-id, its defined symbols (merged from .dynsym, .symtab and a
// separate debuginfo file), and which functions carry the patchable entry pad
// of -fpatchable-function-entry=16,14. It also reads and writes the same
// information as the JSON dump of `ulp extract`, so that a livepatch can be
// packed without the target binary.
//
// elfsym only reads files; it never looks at a running process, and it does
// not know the container format (see package container).
package elfsym
