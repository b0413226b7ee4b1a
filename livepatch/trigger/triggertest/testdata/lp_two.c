/* A livepatch of libtwo.so.1. */
__attribute__((noipa)) int two_value_lp(void) { return 22; }
