// Package recipe knows how a package compiles its translation units.
//
// A Recipe maps a source file of a tree (as a -p1 patch names it) to the
// compiler command the package's own build runs for it, so that ulp build can
// compile the file again, before and after a fix, with the flags the
// distribution's binary was built with. FromCompileCommands reads any
// compile_commands.json; the openssl and glibc recipes configure their trees
// the way Debian's packaging does. Fetch finds and fetches the source tree
// an installed library was built from (dpkg -S, apt-get source).
package recipe
