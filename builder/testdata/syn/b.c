/* libsyn, translation unit b. */
int other_tu(int r) { return r - 1000; }

/* A static function of the same name as one of a.c. */
static __attribute__((noinline)) int check_len(int n) { return n > 20 ? -1 : n; }
int lib_other_len(int n) { return check_len(n) * 2; }
__attribute__((visibility("hidden"))) int syn_hidden = 7;
