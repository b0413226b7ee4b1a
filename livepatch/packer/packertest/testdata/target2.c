static __attribute__((noinline, noclone, used)) int twin(void) { return 2; }
int twin_b(void) { return twin(); }
