/* load: argv[1] threads call calc_value() as fast as they can; every
 * result must be 100 (the original) or 200 (livepatch lp200). The main
 * thread answers stdin lines: "stat" prints "CALLS BAD LASTBAD HEAP", the
 * calls made so far, the wrong results, the last wrong value and the bytes
 * of heap in use (mallinfo2: arena plus mmapped blocks). */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int calc_value(void);

static unsigned long long calls, bad;
static int lastbad;

static void *caller(void *arg) {
  (void)arg;
  for (;;) {
    int v = calc_value();
    if (v != 100 && v != 200) {
      __atomic_add_fetch(&bad, 1, __ATOMIC_RELAXED);
      __atomic_store_n(&lastbad, v, __ATOMIC_RELAXED);
    }
    __atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED);
  }
  return NULL;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 16;
  for (int i = 0; i < n; i++) {
    pthread_t t;
    if (pthread_create(&t, NULL, caller, NULL) != 0)
      return 2;
  }
  printf("ready\n");
  fflush(stdout);
  char line[64];
  while (fgets(line, sizeof line, stdin)) {
    struct mallinfo2 mi = mallinfo2();
    printf("%llu %llu %d %zu\n", __atomic_load_n(&calls, __ATOMIC_RELAXED), __atomic_load_n(&bad, __ATOMIC_RELAXED),
           __atomic_load_n(&lastbad, __ATOMIC_RELAXED), mi.uordblks + mi.hblkhd);
    fflush(stdout);
  }
  return 1;
}
