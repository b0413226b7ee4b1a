/* libbench.so.1: the target library of `make bench`, built with
 * -fpatchable-function-entry=16,14 (then `ulp post`). noipa keeps each
 * function a real, separately called function. The three functions do the
 * same work; they differ only in their entry:
 *   bench_plain   has no entry pad (the attribute turns it off): the baseline;
 *   bench_padded  has the pad and is never patched;
 *   bench_target  has the pad and is patched with the pad mechanism;
 *   bench_entry   has no pad and is patched with the entry mechanism (a
 *                 5-byte jmp over its first instructions). */
#define KEEP __attribute__((noipa))

KEEP __attribute__((patchable_function_entry(0, 0))) long bench_plain(long x) { return x + 1; }
KEEP long bench_padded(long x) { return x + 1; }
KEEP long bench_target(long x) { return x + 1; }
KEEP __attribute__((patchable_function_entry(0, 0))) long bench_entry(long x) { return x + 1; }
