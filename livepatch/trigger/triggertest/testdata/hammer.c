/* hammer: 15 threads that keep the allocator and the dynamic loader busy
 * (5 malloc/free, 5 dlopen/dlclose of argv[1], 5 both), while the main
 * thread answers "value" with calc_value() and "rounds" with whether every
 * thread made progress. With argv[2] = "churn" the 15 threads instead create
 * and join short-lived threads that call calc_value. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int calc_value(void);

static const char *lib;
static int churn;
static volatile long progress[15];

static void *call_value(void *arg) {
  calc_value();
  return arg;
}

static void *hammer(void *arg) {
  long i = (long)arg;
  if (churn) {
    for (;;) {
      pthread_t t;
      if (pthread_create(&t, NULL, call_value, NULL) == 0)
        pthread_join(t, NULL);
      progress[i]++;
    }
  }
  unsigned seed = (unsigned)i;
  for (;;) {
    if (i % 3 != 1) {
      void *p[16];
      for (int k = 0; k < 16; k++)
        p[k] = malloc(1 + rand_r(&seed) % 4096);
      for (int k = 0; k < 16; k++)
        free(p[k]);
    }
    if (i % 3 != 0) {
      void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
      if (h) {
        dlsym(h, "two_value");
        dlclose(h);
      }
    }
    progress[i]++;
  }
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 2)
    return 2;
  lib = argv[1];
  churn = argc > 2 && !strcmp(argv[2], "churn");
  for (long i = 0; i < 15; i++) {
    pthread_t t;
    pthread_create(&t, NULL, hammer, (void *)i);
  }
  printf("ready\n");
  fflush(stdout);
  char line[64];
  while (fgets(line, sizeof line, stdin)) {
    if (!strncmp(line, "rounds", 6)) {
      int all = 1;
      for (int i = 0; i < 15; i++)
        all &= progress[i] > 0;
      printf("%s\n", all ? "all" : "stuck");
    } else {
      printf("%d\n", calc_value());
    }
    fflush(stdout);
  }
  return 1;
}
