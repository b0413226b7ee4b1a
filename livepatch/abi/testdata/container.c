/* container.c: a stand-in for a livepatch container, loaded with op LOAD. */
int ulp_test_new_value(void) { return 42; }
