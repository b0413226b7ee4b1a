// Package regfile opens files whose paths come from outside (a container
// named on the command line, a path a process wrote in its ledger, a file a
// process maps) for reading, only when they are regular files: the path is
// first opened with O_PATH, which opens nothing behind it (a FIFO does not
// block, a device's driver is not called: opening /dev/watchdog starts a
// watchdog), checked with fstat, and only then reopened for reading through
// /proc/self/fd, so the file checked is the file read.
package regfile
