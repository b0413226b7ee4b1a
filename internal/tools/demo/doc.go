// Command demo shows a live patch on a running program, step by step; it is
// what `make demo` runs. It builds a small library with gcc (padded with
// -fpatchable-function-entry=16,14), a program that calls it every half
// second, and a livepatch with its .dsc; packs the livepatch with `ulp
// packer`; starts the program with the runtime preloaded; applies the patch
// with `ulp trigger`, shows the changed output, reverts it with `ulp trigger
// --revert`, shows the original output again and the messages logged in the
// process.
//
// It checks every step against the program's real output and exits 1 if the
// patch did not take effect or was not undone.
package main
