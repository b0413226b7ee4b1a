/* sleeper: "hold N" starts a thread that calls sleep(N) of the system's
 * libc (its stack then holds a return address inside sleep while it
 * waits) and answers "ok" once that thread is blocked in the kernel's
 * nanosleep; "call" prints what sleep(0) returns (0, or 77 once lp_sleep.c
 * replaces it); "done" prints how many hold threads have returned. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static atomic_int done, holder;

static void *hold(void *arg) {
  atomic_store(&holder, (int)gettid());
  sleep((unsigned)(long)arg);
  atomic_fetch_add(&done, 1);
  return NULL;
}

/* sleeping reports whether thread tid is blocked in nanosleep or
 * clock_nanosleep (the first field of /proc/self/task/TID/syscall). */
static int sleeping(int tid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/self/task/%d/syscall", tid);
  FILE *f = fopen(path, "r");
  if (!f)
    return 0;
  long nr = -1;
  int n = fscanf(f, "%ld", &nr);
  fclose(f);
  return n == 1 && (nr == SYS_nanosleep || nr == SYS_clock_nanosleep);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("ready\n");
  char line[64];
  while (fgets(line, sizeof line, stdin)) {
    long n;
    if (sscanf(line, "hold %ld", &n) == 1) {
      pthread_t th;
      atomic_store(&holder, 0);
      pthread_create(&th, NULL, hold, (void *)n);
      pthread_detach(th);
      /* Wait (at most 60 s) until it is inside sleep, blocked. */
      struct timespec ms = {0, 1000000};
      int tid = 0, i = 0;
      for (; i < 60000 && !((tid = atomic_load(&holder)) && sleeping(tid)); i++)
        nanosleep(&ms, NULL);
      printf("%s\n", i < 60000 ? "ok" : "not sleeping");
    } else if (strcmp(line, "call\n") == 0) {
      printf("%u\n", sleep(0));
    } else if (strcmp(line, "done\n") == 0) {
      printf("%d\n", atomic_load(&done));
    } else {
      printf("unknown query\n");
    }
  }
  return 0;
}
