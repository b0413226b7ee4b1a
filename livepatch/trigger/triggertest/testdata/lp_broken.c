/* A livepatch that cannot be loaded: RTLD_NOW fails on its undefined
 * symbol. */
extern int ulp_test_missing_symbol(void);
__attribute__((noipa)) int calc_value_lp(void) { return ulp_test_missing_symbol(); }
