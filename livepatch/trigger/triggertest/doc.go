// Package triggertest builds the real fixtures of the trigger end-to-end
// tests (of livepatch/trigger and of the `ulp trigger` command): patchable C
// libraries and a program compiled with cc at test time, livepatch
// containers packed from them, and the program started with the runtime
// (build/libpulp.so.0) preloaded, answering queries on a pipe.
package triggertest
