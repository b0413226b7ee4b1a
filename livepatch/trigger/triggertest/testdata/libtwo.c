/* A second patchable library (libtwo.so.1). */
__attribute__((noipa)) int two_value(void) { return 2; }
