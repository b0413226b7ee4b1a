/* libentry.so.1 (built with -fpatchable-function-entry=16,14, then `ulp
 * post`): pad_value has the pad and the posted entry NOP 66 90 (the pad
 * mechanism, written while the threads run); entry_value has no pad (the
 * entry mechanism: a 5-byte jump over its first instructions, written with
 * every thread stopped). Both are tiny, so that a thread calling one in a
 * loop spends much of its time in the bytes rewritten at the entry.
 * filler makes the code span several pages, so that the page written lies
 * inside a larger mapping (which the write must not split). */
__attribute__((noipa)) void filler(void) { __asm__ volatile(".fill 12288, 1, 0x90"); }
__attribute__((noipa)) int pad_value(int x) { return x + 1; }
__attribute__((noipa, patchable_function_entry(0, 0))) int entry_value(int x) {
  if (x > 1000) /* long enough for the 5-byte jump */
    return x * 7;
  return x + 1;
}
