// Command mkman writes the man pages of ulp and ulpfleet from the binaries'
// own --help: one gzipped page per command, so the pages always match the
// binaries they are installed with. `make install` runs it:
//
//	go run ./internal/tools/mkman -o DIR BINARY...
//
// For BINARY it runs `BINARY --help`, then `BINARY CMD --help` for every
// command listed under "Available Commands" (recursively, except help), and
// writes DIR/BINARY.1.gz, DIR/BINARY-CMD.1.gz, ...
package main
