/* The target library of the trigger tests (libcalc.so.1), built with
 * -fpatchable-function-entry=16,14. noipa keeps every function a real,
 * separately called function. */
#ifndef BASE
#define BASE 100
#endif
#define KEEP __attribute__((noipa))

int counter = 42;
__thread int tlsvar = 9;

KEEP int calc_value(void) { return BASE; }
/* Linked with -Bsymbolic: this call binds inside the library. */
KEEP int calc_intra(void) { return calc_value() + 1; }
KEEP static int hidden(void) { return 5; }
KEEP int calc_hidden(void) { return hidden() * 10; }
KEEP long calc_args(int a, int b, int c, int d, int e, int f, int g, int h, int i, int j,
                    double f0, double f1, double f2, double f3, double f4, double f5,
                    double f6, double f7, double f8, double f9) {
  return a + b + c + d + e + f + g + h + i + j +
         (long)(f0 + f1 + f2 + f3 + f4 + f5 + f6 + f7 + f8 + f9);
}
KEEP int calc_counter(void) { return counter; }
KEEP int calc_tls(void) { return tlsvar; }

/* calc_page's 14-byte pad starts 10 bytes before a page boundary, so the
 * prologue written by a patch crosses two pages (built with
 * -falign-functions=1, which keeps the pad right after the filler). */
__asm__(".section .text.pagecross,\"ax\",@progbits\n"
        ".p2align 12\n"
        "calc_page_filler:\n"
        ".fill 4096-10, 1, 0xcc\n"
        ".previous\n");
__attribute__((noipa, section(".text.pagecross"))) int calc_page(void) { return 7; }
