// Package builder turns a source fix into a livepatch container for a stock
// library: `ulp build`.
//
// Build compiles each translation unit the fix changes before and after it
// (with the package's own flags, from a recipe), compares the objects
// function by function (package obj), locates every "before" function and
// the symbols it references in the library (package match), rewrites the
// "after" assembly so that the changed functions reach the library's own
// code and data through pointer slots (package asm), links it and packs it
// with the packer, so that a container is validated in one place. Anything
// it cannot express safely is refused with the reason (ErrRefused).
package builder
