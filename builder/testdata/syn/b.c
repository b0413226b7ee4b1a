/* libsyn, translation unit b. */
int other_tu(int r) { return r - 1000; }
