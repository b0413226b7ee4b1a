/* sigframe: a worker thread calls labs() of the system's libc in a loop.
 * "catch" signals it until its handler finds the interrupted instruction
 * pointer inside labs' first 5 bytes (at labs+3, the neg that a 5-byte jump
 * would split) and makes it wait there, inside the handler, and prints that
 * offset. "release" lets the handler return: the thread resumes at the
 * saved instruction pointer. "count" prints the worker's calls so far;
 * "bad" how many results were wrong. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

static atomic_long caught, release, count, bad;

static void handler(int sig, siginfo_t *si, void *ucv) {
  (void)sig, (void)si;
  ucontext_t *uc = ucv;
  uintptr_t rip = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
  uintptr_t f = (uintptr_t)labs;
  if (atomic_load(&caught) == 0 && rip > f && rip < f + 5) {
    atomic_store(&caught, (long)(rip - f));
    struct timespec ts = {0, 1000000};
    while (!atomic_load(&release))
      nanosleep(&ts, NULL);
  }
}

static void *worker(void *arg) {
  (void)arg;
  for (long i = 1;; i++) {
    long r = labs(-i);
    if (r != i && r != i + (1L << 40))
      atomic_fetch_add(&bad, 1);
    atomic_fetch_add_explicit(&count, 1, memory_order_relaxed);
  }
  return NULL;
}

int main(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = handler;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigaction(SIGUSR1, &sa, NULL);
  pthread_t th;
  pthread_create(&th, NULL, worker, NULL);
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("ready\n");
  char line[64];
  while (fgets(line, sizeof line, stdin)) {
    if (strcmp(line, "catch\n") == 0) {
      /* Signal until caught, for at most 45 s (a loaded machine runs the
         worker seldom; the test waits 60 s for the answer). */
      struct timespec t0, t;
      clock_gettime(CLOCK_MONOTONIC, &t0);
      do {
        pthread_kill(th, SIGUSR1);
        usleep(20);
        clock_gettime(CLOCK_MONOTONIC, &t);
      } while (atomic_load(&caught) == 0 && t.tv_sec - t0.tv_sec < 45);
      printf("%ld\n", atomic_load(&caught));
    } else if (strcmp(line, "release\n") == 0) {
      atomic_store(&release, 1);
      printf("ok\n");
    } else if (strcmp(line, "count\n") == 0) {
      printf("%ld\n", atomic_load(&count));
    } else if (strcmp(line, "bad\n") == 0) {
      printf("%ld\n", atomic_load(&bad));
    } else {
      printf("unknown query\n");
    }
  }
  return 0;
}
