// Package elfedit adds non-loaded sections to 64-bit little-endian ELF
// files in pure Go ([AddSections]), leaving the loaded image byte for byte
// as it was. It is the one section writer of the agent: package packer
// embeds .ulp, .ulp.rev and .ulp.comments with it and package sign reserves
// .ulp.sig with it, neither importing the other.
//
// It only rewrites bytes in memory; writing the file (atomically) is the
// caller's job.
package elfedit
