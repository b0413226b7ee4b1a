/* A livepatch of several libcalc functions: a static function, 10 int and
 * 10 float arguments, a data reference, a TLS reference, and a function
 * whose prologue crosses a page boundary. */
struct tls_index {
  unsigned long ti_module, ti_offset;
};
extern void *__tls_get_addr(struct tls_index *);

int *counter_ref;
struct tls_index tlsvar_idx;

__attribute__((noipa)) int hidden_lp(void) { return 6; }
__attribute__((noipa)) long calc_args_lp(int a, int b, int c, int d, int e, int f, int g, int h,
                                         int i, int j, double f0, double f1, double f2, double f3,
                                         double f4, double f5, double f6, double f7, double f8,
                                         double f9) {
  return 1 * a + 2 * b + 3 * c + 4 * d + 5 * e + 6 * f + 7 * g + 8 * h + 9 * i + 10 * j +
         (long)(10 * f0 + 20 * f1 + 30 * f2 + 40 * f3 + 50 * f4 + 60 * f5 + 70 * f6 + 80 * f7 +
                90 * f8 + 100 * f9);
}
__attribute__((noipa)) int calc_counter_lp(void) { return *counter_ref + 1000; }
__attribute__((noipa)) int calc_tls_lp(void) {
  return *(int *)__tls_get_addr(&tlsvar_idx) + 2000;
}
__attribute__((noipa)) int calc_page_lp(void) { return 8; }
