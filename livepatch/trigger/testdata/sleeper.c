/* sleeper: "hold N" starts a thread that calls sleep(N) of the system's
 * libc (its stack then holds a return address inside sleep while it
 * waits); "call" prints what sleep(0) returns (0, or 77 once lp_sleep.c
 * replaces it); "done" prints how many hold threads have returned. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_int done;

static void *hold(void *arg) {
  sleep((unsigned)(long)arg);
  atomic_fetch_add(&done, 1);
  return NULL;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("ready\n");
  char line[64];
  while (fgets(line, sizeof line, stdin)) {
    long n;
    if (sscanf(line, "hold %ld", &n) == 1) {
      pthread_t th;
      pthread_create(&th, NULL, hold, (void *)n);
      pthread_detach(th);
      usleep(100000); /* let it enter sleep */
      printf("ok\n");
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
