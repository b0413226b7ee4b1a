// Package packertest builds real C fixtures for the tests of the packer,
// the container reader, elfsym and the CLI: a target library with
// patchable entries, a livepatch, and a probe program that dlopens a shared
// object and calls one of its functions. Everything is compiled with cc at
// test time into a test's temporary folder.
package packertest
