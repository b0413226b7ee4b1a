/* The livepatch of bench_target: the same work, but it adds 2, so that the
 * harness can tell the patched code is running (bench_target(0) == 2). */
__attribute__((noipa)) long bench_target_lp(long x) { return x + 2; }
