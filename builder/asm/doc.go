// Package asm rewrites GCC's x86-64 assembly output (AT&T syntax, -fPIC,
// -ffunction-sections -fdata-sections) into the source of a livepatch.
//
// Every reference of an instruction to a symbol that the livepatch does not
// keep is redirected through an 8-byte pointer slot, __ulp_ref_NAME, that
// the container's references fill with the library's address at apply
// time: a call or jump goes through the slot, an address load reads the
// slot, and any other instruction with a rip-relative operand loads the
// slot into a scratch register (saved on the stack, below the red zone) and
// uses it as its base.
// Debug information is dropped, every global symbol is made hidden, and a
// table of the functions the patch must keep becomes the one exported
// symbol, so that ld --gc-sections keeps exactly what they reach.
package asm
