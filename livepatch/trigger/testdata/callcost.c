/* callcost: times calls of cost_pad (a library built with the pad) and
 * cost_entry (a library built without it) through the PLT, as a program
 * calls a distribution library. "time NAME N" prints the nanoseconds per
 * call of N calls (median of 5 runs); "check" prints cost_pad(1) and
 * cost_entry(1). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int cost_pad(int x);
int cost_entry(int x);

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("ready\n");
  char line[128], name[64];
  long n;
  volatile int sink = 0;
  while (fgets(line, sizeof line, stdin)) {
    if (sscanf(line, "time %63s %ld", name, &n) == 2) {
      int (*f)(int) = strcmp(name, "pad") == 0 ? cost_pad : cost_entry;
      double runs[5];
      for (int r = 0; r < 5; r++) {
        double t0 = now();
        int s = 0;
        if (f == cost_pad)
          for (long i = 0; i < n; i++)
            s += cost_pad((int)i);
        else
          for (long i = 0; i < n; i++)
            s += cost_entry((int)i);
        runs[r] = (now() - t0) / n;
        sink += s;
      }
      qsort(runs, 5, sizeof runs[0], cmp);
      printf("%.3f\n", runs[2]);
    } else if (strcmp(line, "check\n") == 0) {
      printf("%d %d\n", cost_pad(1), cost_entry(1));
    } else {
      printf("unknown query\n");
    }
  }
  return sink == 42;
}
