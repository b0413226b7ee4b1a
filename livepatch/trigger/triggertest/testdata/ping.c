/* A target for injected calls: argv[1] spinning threads. Prints "ready",
 * then answers each stdin line with "ok N" (N counts the lines). The main
 * thread waits in read(2), a restartable system call. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static volatile unsigned long counter;

static void *spin(void *arg) {
  (void)arg;
  for (;;)
    counter++;
  return NULL;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 0;
  for (int i = 0; i < n; i++) {
    pthread_t t;
    pthread_create(&t, NULL, spin, NULL);
  }
  printf("ready\n");
  fflush(stdout);
  char line[256];
  int count = 0;
  while (fgets(line, sizeof line, stdin)) {
    printf("ok %d\n", ++count);
    fflush(stdout);
  }
  if (!ferror(stdin))
    return 0; /* stdin closed: the test is done with us */
  perror("fgets");
  return 1;
}
