/* percall: measures the cost of a call to each function of libbench.so.1,
 * in the running process, so that the harness can patch bench_target live
 * between two measurements. Lines on stdin: "measure N" prints the ns per
 * call of bench_plain, bench_padded, bench_target and bench_entry: for
 * each, the fastest of 5 batches of N/5 calls, the batches of the four taking
 * turns (so a preemption does not count, and all see the same machine). Each
 * call's argument is the previous call's result, so calls cannot overlap;
 * "value" prints bench_target(0) (1 unpatched, 2 patched), "entry"
 * bench_entry(0). The process is
 * also the small program of the footprint and fleet benchmarks: it does
 * nothing until asked. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

long bench_plain(long x);
long bench_padded(long x);
long bench_target(long x);
long bench_entry(long x);

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static double per_call(long (*f)(long), long n, long *sink) {
  long x = *sink;
  double t0 = now();
  for (long i = 0; i < n; i++)
    x = f(x);
  double t1 = now();
  *sink = x;
  return (t1 - t0) / n;
}

int main(void) {
  printf("ready\n");
  fflush(stdout);
  char line[64];
  long sink = 0;
  while (fgets(line, sizeof line, stdin)) {
    if (!strncmp(line, "measure ", 8)) {
      long n = atol(line + 8) / 5;
      if (n <= 0)
        n = 1;
      long (*fns[4])(long) = {bench_plain, bench_padded, bench_target, bench_entry};
      double best[4] = {1e18, 1e18, 1e18, 1e18};
      for (int b = 0; b < 5; b++)
        for (int i = 0; i < 4; i++) {
          double t = per_call(fns[i], n, &sink);
          if (t < best[i])
            best[i] = t;
        }
      printf("%.4f %.4f %.4f %.4f\n", best[0], best[1], best[2], best[3]);
    } else if (!strncmp(line, "entry", 5)) {
      printf("%ld\n", bench_entry(0));
    } else {
      printf("%ld\n", bench_target(0));
    }
    fflush(stdout);
  }
  return 0;
}
