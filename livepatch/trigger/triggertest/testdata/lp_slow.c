/* A livepatch whose constructor takes 3 s: its load outlasts a short
 * --timeout. */
#include <time.h>

__attribute__((constructor)) static void slow(void) {
  struct timespec d = {3, 0};
  while (nanosleep(&d, &d) != 0) {
  }
}

__attribute__((noipa)) int calc_value_lp(void) { return 900; }
