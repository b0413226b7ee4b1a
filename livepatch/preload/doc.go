// Package preload manages the system-wide preload of the runtime: the
// entry for libpulp.so.0 in /etc/ld.so.preload, which makes the dynamic
// loader map the runtime into every dynamically linked program started
// afterwards (setuid programs included, unlike LD_PRELOAD).
//
// It owns only the runtime's entries of that file: every other entry,
// comment and blank line is kept byte for byte. The file is replaced
// atomically (a temporary file in the same folder, fsync, rename, fsync of
// the folder), so a crash leaves either the old or the new file, never a
// torn one that the loader would read for every process. A runtime is
// enabled only after it has been seen to load: a program started with it
// preloaded ran and mapped it.
//
// Every path is taken under a configurable root ("/" on a live host), so
// the package can prepare an image or be tested on a scratch folder.
package preload
