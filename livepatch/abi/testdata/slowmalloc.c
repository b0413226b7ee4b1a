/* slowmalloc.c: a second malloc interposer, preloaded after libpulp.so.0.
   malloc(12345) blocks forever, so a thread stays inside libpulp's malloc
   wrapper; every other call goes on with dlsym(RTLD_NEXT). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

void *malloc(size_t n) {
  static void *(*next)(size_t);
  if (n == 12345) {
    char msg[64];
    int len = snprintf(msg, sizeof msg, "blocked %ld\n", (long)syscall(SYS_gettid));
    if (write(1, msg, len) < 0)
      return NULL;
    int p[2];
    char c;
    if (pipe(p) == 0)
      while (read(p[0], &c, 1) != 0) {
      }
  }
  if (!next)
    next = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
  return next(n);
}
