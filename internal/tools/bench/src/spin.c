/* spin N [IDLE]: the target of the pause benchmark. N worker threads: worker 0
 * spins on the clock, calling bench_target() and bench_entry() (the two
 * patched functions) between two readings, and
 * records the largest gap between two consecutive readings (the longest time
 * it was kept from running); workers 1..N-1 wake every 10 ms and call
 * bench_target(), like the idle threads of a service; IDLE more threads
 * (default 0) block in pause() and never run again ("ready" waits until
 * they all do). The main thread
 * answers lines on stdin: "gap" prints the largest gap in ns since the last
 * "gap" and resets it; "value" prints bench_target(0).
 *
 * livepatch/trigger/triggertest/testdata/spin.c is a different program
 * with the same protocol: the trigger tests' target, every spinning thread
 * calling libcalc's calc_value in a tight loop (its comment says why). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

long bench_target(long x);
long bench_entry(long x);

static volatile long long maxgap;
static volatile long sink;

static long long now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void *spinner(void *arg) {
  (void)arg;
  long long last = now();
  for (;;) {
    long long t = now();
    if (t - last > maxgap)
      maxgap = t - last;
    last = t;
    sink = bench_entry(bench_target(sink));
  }
  return NULL;
}

static void *sleeper(void *arg) {
  (void)arg;
  struct timespec ts = {0, 10 * 1000 * 1000};
  for (;;) {
    nanosleep(&ts, NULL);
    sink = bench_entry(bench_target(sink));
  }
  return NULL;
}

static int idling; /* idle threads that reached pause() */

static void *idler(void *arg) {
  (void)arg;
  __atomic_add_fetch(&idling, 1, __ATOMIC_RELAXED);
  for (;;)
    pause();
  return NULL;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 1;
  int idle = argc > 2 ? atoi(argv[2]) : 0;
  for (int i = 0; i < n + idle; i++) {
    pthread_t t;
    if (pthread_create(&t, NULL, i == 0 ? spinner : i < n ? sleeper : idler, NULL) != 0) {
      printf("error: pthread_create\n");
      return 1;
    }
  }
  /* "ready" once every idle thread is blocked: on a busy machine a
     thousand new threads take a while to be scheduled once, and a trigger
     measured meanwhile would measure that. */
  struct timespec ms = {0, 1000 * 1000};
  while (__atomic_load_n(&idling, __ATOMIC_RELAXED) < idle)
    nanosleep(&ms, NULL);
  printf("ready\n");
  fflush(stdout);
  char line[64];
  while (fgets(line, sizeof line, stdin)) {
    if (!strncmp(line, "gap", 3)) {
      printf("%lld\n", maxgap);
      maxgap = 0;
    } else if (!strncmp(line, "entry", 5)) {
      printf("%ld\n", bench_entry(0));
    } else {
      printf("%ld\n", bench_target(0));
    }
    fflush(stdout);
  }
  return 0;
}
