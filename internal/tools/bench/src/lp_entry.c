/* The livepatch of bench_entry (entry mechanism): the same work, but it
 * adds 2, so that the harness can tell the patched code is running. */
__attribute__((noipa)) long bench_entry_lp(long x) { return x + 2; }
