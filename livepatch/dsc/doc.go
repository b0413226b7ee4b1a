// Package dsc parses livepatch descriptions, the line-based .dsc text format
// of libpulp's packer, so that existing descriptions work unchanged:
//
//	! free text; bug labels such as CVE-2024-2961 are extracted from it
//	libfoo_livepatch.so          the livepatch (relative to the .dsc's folder)
//	@libfoo.so.1                 the target: an ELF file or an `ulp extract` JSON dump
//	foo:foo_lp                   replace function foo of the target by foo_lp
//	foo:foo_lp:1139              ... the foo at offset 0x1139 (for duplicate local names)
//	#counter:counter_ref         data reference, offsets resolved by name
//	#counter:counter_ref:4010:3ff0   ... with explicit hex offsets
//	#%tlsvar:tlsvar_idx          a TLS variable (the reference is a tls_index)
//
// Parse only checks syntax; resolving names against the ELF files is the
// packer's job. Errors are *Error values in compiler style,
// "file:line:col: error: message".
package dsc
