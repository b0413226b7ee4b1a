// Package obj reads the relocatable x86-64 ELF objects that ulp build
// compiles (with -ffunction-sections -fdata-sections) and compares them.
//
// Read turns an object into its functions and data objects, each with its
// bytes and its relocations. A relocation names its target by identity, not
// by section offset: a function or a variable by its symbol name, read-only
// data (string literals, constant tables) by its content, so that two
// compilations of one source compare equal wherever the same code refers to
// the same thing. Diff compares the objects of a translation unit before and
// after a fix function by function.
package obj
