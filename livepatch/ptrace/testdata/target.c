/* A ptrace test target: argv[1] spinning threads, argv[2] = 1 to churn
 * threads (create+join in a loop). Prints "ready ADDR" with the address of
 * value(), then answers each stdin line with "VALUE USR1COUNT", or, for
 * "exec", executes itself again (a new "ready" line follows). The main
 * thread sits in read(2) between lines. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile unsigned long counter;
static volatile sig_atomic_t usr1;

static void on_usr1(int sig) { (void)sig; usr1++; }

static void *spin(void *arg) {
  (void)arg;
  for (;;)
    counter++;
  return NULL;
}

static void *noop(void *arg) { return arg; }

static void *churn(void *arg) {
  (void)arg;
  for (;;) {
    pthread_t t;
    if (pthread_create(&t, NULL, noop, NULL) == 0)
      pthread_join(t, NULL);
  }
  return NULL;
}

__attribute__((noinline, aligned(16))) int value(void) { return 1; }

int main(int argc, char **argv) {
  int nspin = argc > 1 ? atoi(argv[1]) : 0;
  int nchurn = argc > 2 ? atoi(argv[2]) : 0;
  signal(SIGUSR1, on_usr1);
  for (int i = 0; i < nspin; i++) {
    pthread_t t;
    pthread_create(&t, NULL, spin, NULL);
  }
  for (int i = 0; i < nchurn; i++) {
    pthread_t t;
    pthread_create(&t, NULL, churn, NULL);
  }
  printf("ready %p\n", (void *)value);
  fflush(stdout);
  char line[64];
  while (fgets(line, sizeof line, stdin)) {
    if (!strncmp(line, "exec", 4)) {
      execv("/proc/self/exe", argv);
      perror("execv");
      return 1;
    }
    printf("%d %d\n", value(), (int)usr1);
    fflush(stdout);
  }
  perror("fgets");
  return 0;
}
