/* threads: named threads that check what a hijack must not disturb.
 *   redzone  keeps a pattern in the 128-byte red zone below %rsp and checks it
 *   sleeper  sleeps 20 ms at a time and checks the sleep was whole (no EINTR)
 *   reader   blocks in read(2) on a pipe and checks each read got its byte
 *   small    sleeps on a 32 KiB stack, too small to take an injected call
 * stdin commands: "errors" prints "redzone=N sleep=N read=N rounds=N";
 * "pipe" writes one byte to the reader and prints the number of reads. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

volatile long redzone_errors, redzone_rounds, sleep_errors, read_errors, reads;
static int pipefd[2];

__attribute__((noreturn)) static void *redzone(void *arg) {
  (void)arg;
  __asm__ volatile(
      "1:\n"
      "  movabsq $0x5a5aa5a5c3c33c3c, %%rax\n"
      "  movq $-128, %%rdx\n"
      "2: movq %%rax, (%%rsp,%%rdx)\n"
      "  addq $8, %%rdx\n"
      "  jnz 2b\n"
      "  movl $200000, %%ecx\n"
      "3: movq $-128, %%rdx\n"
      "4: cmpq %%rax, (%%rsp,%%rdx)\n"
      "  jne 5f\n"
      "  addq $8, %%rdx\n"
      "  jnz 4b\n"
      "  decl %%ecx\n"
      "  jnz 3b\n"
      "  lock incq redzone_rounds(%%rip)\n"
      "  jmp 1b\n"
      "5: lock incq redzone_errors(%%rip)\n"
      "  jmp 1b\n" ::
          : "rax", "rcx", "rdx", "memory", "cc");
  __builtin_unreachable();
}

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void *sleeper(void *arg) {
  (void)arg;
  for (;;) {
    struct timespec d = {0, 20 * 1000 * 1000};
    long long t = now_ns();
    if (nanosleep(&d, NULL) != 0 || now_ns() - t < 20 * 1000 * 1000)
      sleep_errors++;
  }
  return NULL;
}

static void *reader(void *arg) {
  (void)arg;
  for (;;) {
    char c;
    ssize_t n = read(pipefd[0], &c, 1);
    if (n != 1) {
      read_errors++;
      if (n == 0)
        return NULL;
      continue;
    }
    __atomic_add_fetch(&reads, 1, __ATOMIC_SEQ_CST);
  }
  return NULL;
}

static void *small(void *arg) {
  (void)arg;
  for (;;)
    pause();
  return NULL;
}

static void spawn_sized(void *(*fn)(void *), const char *name, size_t stack) {
  pthread_t t;
  pthread_attr_t a;
  pthread_attr_init(&a);
  if (stack)
    pthread_attr_setstacksize(&a, stack);
  pthread_create(&t, &a, fn, NULL);
  pthread_attr_destroy(&a);
  pthread_setname_np(t, name);
}

static void spawn(void *(*fn)(void *), const char *name) { spawn_sized(fn, name, 0); }

int main(void) {
  if (pipe(pipefd) != 0)
    return 1;
  spawn(redzone, "redzone");
  spawn(sleeper, "sleeper");
  spawn(reader, "reader");
  spawn_sized(small, "small", 32 << 10);
  printf("ready\n");
  fflush(stdout);
  char line[64];
  while (fgets(line, sizeof line, stdin)) {
    if (!strncmp(line, "pipe", 4)) {
      long before = __atomic_load_n(&reads, __ATOMIC_SEQ_CST);
      if (write(pipefd[1], "x", 1) != 1)
        return 1;
      while (__atomic_load_n(&reads, __ATOMIC_SEQ_CST) == before)
        usleep(100);
      printf("%ld\n", reads);
    } else {
      printf("redzone=%ld sleep=%ld read=%ld rounds=%s\n", redzone_errors, sleep_errors,
             read_errors, redzone_rounds > 0 ? "yes" : "no");
    }
    fflush(stdout);
  }
  return 1;
}
