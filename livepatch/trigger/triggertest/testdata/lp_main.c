/* A livepatch of the executable's main_value. */
__attribute__((noipa)) int main_value_lp(void) { return 11; }
