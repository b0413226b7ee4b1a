/* spin: argv[1] threads spinning on the clock, and argv[2] threads sleeping
 * in pause(2). Each spinning thread records the largest gap
 * between two consecutive clock readings (the longest time it was kept from
 * running). The main thread answers stdin lines: "gap" prints the largest
 * gap in ns and resets it, "value" calls calc_value().
 *
 * internal/tools/bench/src/spin.c is its cousin, kept apart on purpose:
 * this one is the trigger tests' target over the fixture's libcalc (every
 * spinning thread calls calc_value in a tight loop: the fault tests run
 * two, so that a trigger killed at any moment finds threads inside the
 * patched code; BenchmarkPause one, beside threads blocked in pause); the
 * bench's is the pause benchmark's target shaped like a service (one
 * thread measuring, the others waking every 10 ms, the idle ones counted
 * before "ready"), over libbench's pad and entry functions, and go:embed
 * cannot reach a file outside the bench's folder. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int calc_value(void);

static volatile long long maxgap;

static long long now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void *spin(void *arg) {
  (void)arg;
  long long last = now();
  for (;;) {
    long long t = now();
    if (t - last > maxgap)
      maxgap = t - last;
    last = t;
    calc_value();
  }
  return NULL;
}

static void *sleeper(void *arg) {
  (void)arg;
  for (;;)
    pause();
  return NULL;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 1;
  int sleepers = argc > 2 ? atoi(argv[2]) : 0;
  for (int i = 0; i < n; i++) {
    pthread_t t;
    pthread_create(&t, NULL, spin, NULL);
  }
  for (int i = 0; i < sleepers; i++) {
    pthread_t t;
    pthread_create(&t, NULL, sleeper, NULL);
  }
  printf("ready\n");
  fflush(stdout);
  char line[64];
  while (fgets(line, sizeof line, stdin)) {
    if (!strncmp(line, "gap", 3)) {
      printf("%lld\n", maxgap);
      maxgap = 0;
    } else {
      printf("%d\n", calc_value());
    }
    fflush(stdout);
  }
  return 1;
}
