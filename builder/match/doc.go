// Package match finds the functions of a compiled translation unit in a
// stock, possibly stripped, shared library, and from them the library's
// address of every symbol they refer to.
//
// A function is looked for by name among the library's exported symbols
// (and its symbol table or debuginfo, where present), else among the
// function starts its .eh_frame describes (present in stripped libraries)
// that have the function's size. A candidate matches when its bytes equal
// the compiled code with every relocated field masked, allowing the
// rewrites GNU ld makes of GOTPCRELX sites. Each relocated field of a match
// then gives the library address of the symbol it names (for a PC-relative
// field, S = field + P - A): that is how static functions and variables of
// a stripped library are located without debuginfo.
package match
