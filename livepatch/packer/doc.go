// Package packer builds livepatch containers: it resolves a parsed .dsc
// description against the livepatch and the target (an ELF file or an `ulp
// extract` dump), computes the patch id, and embeds the .ulp, .ulp.rev and
// .ulp.comments sections into the livepatch in pure Go (package elfedit). It
// also implements `ulp post`, which merges the two NOPs after each padded
// entry into one.
//
// Every file is rewritten atomically (package atomicfile): a temporary file
// in the same folder, fsync, rename; no temporary file survives any error.
package packer
