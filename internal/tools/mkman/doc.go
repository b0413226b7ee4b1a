// Command mkman writes the man pages of ulp and ulpfleet with cobra's man
// generator (github.com/spf13/cobra/doc), from the same command trees the
// binaries run: one gzipped page per command, with the sections NAME,
// SYNOPSIS, DESCRIPTION, OPTIONS, OPTIONS INHERITED FROM PARENT COMMANDS,
// EXIT STATUS and SEE ALSO. `make install` runs it:
//
//	go run ./internal/tools/mkman -o DIR -version VERSION
//
// A command's EXIT STATUS is the block of its --help that starts with the
// line "EXIT STATUS", else its binary's. Defaults that depend on the machine
// or the user that runs mkman are not baked in: the caller's home folder
// reads "~", and the environment variables a default is read from are unset
// first. The pages are dated SOURCE_DATE_EPOCH (the Makefile sets it to the
// last commit's time), so the same tree gives the same bytes; without it,
// today.
package main
