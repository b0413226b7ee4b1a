/* blockctor.c: a library whose constructor blocks forever, so the thread
   that dlopens it stays inside the dynamic loader holding its lock. */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

__attribute__((constructor)) static void block(void) {
  printf("blocked %ld\n", (long)syscall(SYS_gettid));
  fflush(stdout);
  int p[2];
  char c;
  if (pipe(p) == 0)
    while (read(p[0], &c, 1) != 0) {
    }
}
