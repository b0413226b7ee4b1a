/* entryspin N: N threads call pad_value(0) and N threads entry_value(0) in
 * a tight loop, so that at any moment threads execute the entry bytes the
 * agent rewrites; every result must be 1 (original) or 2 (patched), and a
 * thread resumed in the middle of an instruction would crash the process.
 * The main thread answers stdin lines: "stat" prints "CALLS BAD LASTBAD". */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

int pad_value(int);
int entry_value(int);

static unsigned long long calls, bad;
static int lastbad;

static void check(int v) {
  if (v != 1 && v != 2) {
    __atomic_add_fetch(&bad, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&lastbad, v, __ATOMIC_RELAXED);
  }
}

static void *pad_caller(void *arg) {
  (void)arg;
  for (;;) {
    for (int i = 0; i < 1000; i++)
      check(pad_value(0));
    __atomic_add_fetch(&calls, 1000, __ATOMIC_RELAXED);
  }
  return NULL;
}

static void *entry_caller(void *arg) {
  (void)arg;
  for (;;) {
    for (int i = 0; i < 1000; i++)
      check(entry_value(0));
    __atomic_add_fetch(&calls, 1000, __ATOMIC_RELAXED);
  }
  return NULL;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 2;
  for (int i = 0; i < 2 * n; i++) {
    pthread_t t;
    if (pthread_create(&t, NULL, i % 2 ? entry_caller : pad_caller, NULL) != 0)
      return 2;
  }
  printf("ready\n");
  fflush(stdout);
  char line[64];
  while (fgets(line, sizeof line, stdin))
    printf("%llu %llu %d\n", __atomic_load_n(&calls, __ATOMIC_RELAXED), __atomic_load_n(&bad, __ATOMIC_RELAXED),
           __atomic_load_n(&lastbad, __ATOMIC_RELAXED)),
        fflush(stdout);
  return 1;
}
