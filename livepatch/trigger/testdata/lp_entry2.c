/* The livepatch of libentry.so.1: both functions return x + 2. */
__attribute__((noipa)) int pad_value_lp(int x) { return x + 2; }
__attribute__((noipa)) int entry_value_lp(int x) { return x + 2; }
