/* A livepatch of calc_value returning VALUE. */
__attribute__((noipa)) int calc_value_lp(void) { return VALUE; }
