/* leaderexit: the main thread starts a thread that serves stdin (prints
 * "ready", answers "value" with calc_value()) and then calls pthread_exit. */
#include <pthread.h>
#include <stdio.h>

int calc_value(void);

static void *serve(void *arg) {
  (void)arg;
  printf("ready\n");
  fflush(stdout);
  char line[64];
  while (fgets(line, sizeof line, stdin)) {
    printf("%d\n", calc_value());
    fflush(stdout);
  }
  return NULL;
}

int main(void) {
  pthread_t t;
  pthread_create(&t, NULL, serve, NULL);
  pthread_exit(NULL);
}
