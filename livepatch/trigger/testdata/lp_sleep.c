/* lp_sleep: a replacement for sleep (libc.so.6): sleep(0) returns 77, and
 * other lengths still sleep (inside sleep_lp). */
#include <time.h>

unsigned int sleep_lp(unsigned int s) {
  struct timespec ts = {s, 0};
  if (s > 0)
    nanosleep(&ts, NULL);
  return 77;
}
