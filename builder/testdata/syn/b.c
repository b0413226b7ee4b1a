/* libsyn, translation unit b. */
int other_tu(int r) { return r - 1000; }
__attribute__((visibility("hidden"))) int syn_hidden = 7;
