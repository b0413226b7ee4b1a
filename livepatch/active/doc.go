// Package active owns the patch-on-start folder: the livepatch containers
// that the runtime (libpulp.so.0) applies, before main, to every process
// that starts with it preloaded (libpulp/active.c).
//
// The folder is DefaultDir unless LIBPULP_ACTIVE_DIR names another (the
// runtime reads the same variable). The runtime applies the regular files
// whose names end in .so and do not start with a dot, in byte order of
// their names, and only when the folder and each file are owned by root or
// the process's user and not writable by group or others: whoever may write
// there changes the code of every process that starts. It does not check
// signatures; `ulp trigger --activate` does, under the trust policy, before
// it puts a container there with Install.
package active
