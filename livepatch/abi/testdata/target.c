/* target.c: the process the runtime tests hijack. argv[1] selects a mode:
     echo      print "ready", then echo stdin lines as "got: LINE" with read(2)
               (a read that fails, e.g. with EINTR, prints "read error")
     regs      a thread spins checking that its registers keep known values;
               "stop" on stdin ends it with "regs ok" or "regs bad"
     malloc    a thread calls malloc(12345), which slowmalloc.so blocks
     dlopen    a thread dlopens argv[2], whose constructor blocks
     iterate   a thread blocks inside a dl_iterate_phdr callback
     fork      a thread blocks inside fork(), in an atfork handler
     smallstack a thread with a 32 KiB stack blocks in read(2)
     errno     a thread spins checking that errno keeps the value it set;
               "stop" on stdin ends it with "errno ok" or "errno bad"
     sigjmp    a thread spins; its SIGUSR1 handler siglongjmps back to the
               spin loop, printing "jumped"
     mdwe      the process forbids itself W+X and X-gaining mappings
               (prctl PR_SET_MDWE), as MemoryDenyWriteExecute= does
     hammer    15 threads: odd ones malloc and free, even ones dlopen and
               dlclose argv[2] and libm.so.6, without pause
   Blocked threads print "blocked TID" first. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef PR_SET_MDWE
#define PR_SET_MDWE 65
#define PR_MDWE_REFUSE_EXEC_GAIN 1
#endif

static const char *arg2;
static volatile int stop_flag;

static void say_blocked(void) {
  printf("blocked %ld\n", (long)syscall(SYS_gettid));
  fflush(stdout);
}

static void block_forever(void) {
  int p[2];
  char c;
  if (pipe(p) == 0)
    while (read(p[0], &c, 1) != 0) {
    }
}

static int iterate_cb(struct dl_phdr_info *i, size_t s, void *a) {
  (void)i, (void)s, (void)a;
  say_blocked();
  block_forever();
  return 1;
}

static void block_prepare(void) {
  say_blocked();
  block_forever();
}

static void *worker(void *arg) {
  const char *mode = arg;
  if (strcmp(mode, "malloc") == 0) {
    void *volatile p = malloc(12345); /* slowmalloc.so blocks this one */
    free(p);
  } else if (strcmp(mode, "dlopen") == 0) {
    if (!dlopen(arg2, RTLD_NOW))
      printf("dlopen: %s\n", dlerror());
  } else if (strcmp(mode, "iterate") == 0) {
    dl_iterate_phdr(iterate_cb, NULL);
  } else if (strcmp(mode, "smallstack") == 0) {
    say_blocked();
    block_forever();
  } else if (strcmp(mode, "fork") == 0) {
    pthread_atfork(block_prepare, NULL, NULL);
    if (fork() == 0)
      _exit(0);
  }
  return NULL;
}

/* regs_loop spins with known values in every general register and in
   xmm0..xmm15 until stop_flag is set; returns 0 when every check held. */
static long regs_loop(void) {
  static const double vals[16] = {1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5,
                                  9.5, 10.5, 11.5, 12.5, 13.5, 14.5, 15.5, 16.5};
  long bad;
  __asm__ volatile(
      "push %%rbp\n"
      "push %%rbx\n"
      "push %%r12\n"
      "push %%r13\n"
      "push %%r14\n"
      "push %%r15\n"
      "movsd 0(%[v]), %%xmm0\n movsd 8(%[v]), %%xmm1\n movsd 16(%[v]), %%xmm2\n"
      "movsd 24(%[v]), %%xmm3\n movsd 32(%[v]), %%xmm4\n movsd 40(%[v]), %%xmm5\n"
      "movsd 48(%[v]), %%xmm6\n movsd 56(%[v]), %%xmm7\n movsd 64(%[v]), %%xmm8\n"
      "movsd 72(%[v]), %%xmm9\n movsd 80(%[v]), %%xmm10\n movsd 88(%[v]), %%xmm11\n"
      "movsd 96(%[v]), %%xmm12\n movsd 104(%[v]), %%xmm13\n movsd 112(%[v]), %%xmm14\n"
      "movsd 120(%[v]), %%xmm15\n"
      "push %[v]\n"
      "push %[f]\n"
      "mov $0x11, %%rax\n mov $0x22, %%rbx\n mov $0x33, %%rcx\n mov $0x44, %%rdx\n"
      "mov $0x55, %%rsi\n mov $0x66, %%rdi\n mov $0x77, %%rbp\n mov $0x88, %%r8\n"
      "mov $0x99, %%r9\n mov $0xaa, %%r10\n mov $0xbb, %%r11\n mov $0xcc, %%r12\n"
      "mov $0xdd, %%r13\n mov $0xee, %%r14\n mov $0xff, %%r15\n"
      "1:\n"
      "cmp $0x11, %%rax\n jne 2f\n cmp $0x22, %%rbx\n jne 2f\n cmp $0x33, %%rcx\n jne 2f\n"
      "cmp $0x44, %%rdx\n jne 2f\n cmp $0x55, %%rsi\n jne 2f\n cmp $0x66, %%rdi\n jne 2f\n"
      "cmp $0x77, %%rbp\n jne 2f\n cmp $0x88, %%r8\n jne 2f\n cmp $0x99, %%r9\n jne 2f\n"
      "cmp $0xaa, %%r10\n jne 2f\n cmp $0xbb, %%r11\n jne 2f\n cmp $0xcc, %%r12\n jne 2f\n"
      "cmp $0xdd, %%r13\n jne 2f\n cmp $0xee, %%r14\n jne 2f\n cmp $0xff, %%r15\n jne 2f\n"
      "mov 8(%%rsp), %%rax\n" /* vals */
      "ucomisd 0(%%rax), %%xmm0\n jne 2f\n ucomisd 8(%%rax), %%xmm1\n jne 2f\n"
      "ucomisd 16(%%rax), %%xmm2\n jne 2f\n ucomisd 24(%%rax), %%xmm3\n jne 2f\n"
      "ucomisd 32(%%rax), %%xmm4\n jne 2f\n ucomisd 40(%%rax), %%xmm5\n jne 2f\n"
      "ucomisd 48(%%rax), %%xmm6\n jne 2f\n ucomisd 56(%%rax), %%xmm7\n jne 2f\n"
      "ucomisd 64(%%rax), %%xmm8\n jne 2f\n ucomisd 72(%%rax), %%xmm9\n jne 2f\n"
      "ucomisd 80(%%rax), %%xmm10\n jne 2f\n ucomisd 88(%%rax), %%xmm11\n jne 2f\n"
      "ucomisd 96(%%rax), %%xmm12\n jne 2f\n ucomisd 104(%%rax), %%xmm13\n jne 2f\n"
      "ucomisd 112(%%rax), %%xmm14\n jne 2f\n ucomisd 120(%%rax), %%xmm15\n jne 2f\n"
      "mov $0x11, %%rax\n"
      "mov (%%rsp), %%rax\n cmpl $0, (%%rax)\n mov $0x11, %%rax\n"
      "je 1b\n"
      "xor %%rax, %%rax\n jmp 3f\n"
      "2: mov $1, %%rax\n"
      "3:\n"
      "add $16, %%rsp\n"
      "pop %%r15\n pop %%r14\n pop %%r13\n pop %%r12\n pop %%rbx\n pop %%rbp\n"
      : "=&a"(bad)
      : [v] "r"(vals), [f] "r"(&stop_flag)
      : "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "memory", "cc", "xmm0", "xmm1",
        "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
        "xmm12", "xmm13", "xmm14", "xmm15");
  return bad;
}

static void *errno_worker(void *arg) {
  (void)arg;
  errno = 4242;
  say_blocked();
  errno = 4242;
  long bad = 0;
  while (!stop_flag)
    if (*(volatile int *)&errno != 4242)
      bad = 1;
  return (void *)bad;
}

static sigjmp_buf jump_env;

static void on_usr1(int sig) {
  (void)sig;
  siglongjmp(jump_env, 1);
}

static void *sigjmp_worker(void *arg) {
  (void)arg;
  signal(SIGUSR1, on_usr1);
  if (sigsetjmp(jump_env, 1))
    printf("jumped\n");
  else
    say_blocked();
  while (!stop_flag) {
  }
  return NULL;
}

static void *hammer_worker(void *arg) {
  long k = (long)arg;
  for (;;) {
    if (k % 2) {
      void *p[16];
      for (int i = 0; i < 16; i++)
        p[i] = malloc(16 + i * 100 * k);
      for (int i = 0; i < 16; i++)
        free(p[i]);
    } else {
      void *h = dlopen(arg2, RTLD_NOW | RTLD_LOCAL);
      void *m = dlopen("libm.so.6", RTLD_NOW);
      if (h)
        dlclose(h);
      if (m)
        dlclose(m);
    }
  }
  return NULL;
}

static void *regs_worker(void *arg) {
  (void)arg;
  say_blocked();
  return (void *)regs_loop();
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "echo";
  arg2 = argc > 2 ? argv[2] : "";
  setvbuf(stdout, NULL, _IOLBF, 0);
  pthread_t th;
  if (strcmp(mode, "mdwe") == 0) {
    if (prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0) {
      printf("prctl(PR_SET_MDWE): %s\n", strerror(errno));
      return 1;
    }
    if (mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) !=
        MAP_FAILED) {
      printf("MDWE not in effect\n");
      return 1;
    }
  }
  if (strcmp(mode, "regs") == 0)
    pthread_create(&th, NULL, regs_worker, NULL);
  else if (strcmp(mode, "errno") == 0)
    pthread_create(&th, NULL, errno_worker, NULL);
  else if (strcmp(mode, "sigjmp") == 0)
    pthread_create(&th, NULL, sigjmp_worker, NULL);
  else if (strcmp(mode, "hammer") == 0)
    for (long i = 0; i < 15; i++)
      pthread_create(&th, NULL, hammer_worker, (void *)i);
  else if (strcmp(mode, "smallstack") == 0) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 32 * 1024);
    pthread_create(&th, &attr, worker, (void *)mode);
  } else if (strcmp(mode, "echo") != 0)
    pthread_create(&th, NULL, worker, (void *)mode);
  printf("ready %d\n", getpid());
  char buf[256];
  for (;;) {
    ssize_t n = read(0, buf, sizeof buf - 1);
    if (n < 0) {
      printf("read error: %s\n", strerror(errno));
      return 2;
    }
    if (n == 0)
      return 0;
    buf[n] = '\0';
    if ((strcmp(mode, "regs") == 0 || strcmp(mode, "errno") == 0) && strncmp(buf, "stop", 4) == 0) {
      stop_flag = 1;
      void *bad;
      pthread_join(th, &bad);
      printf("%s %s\n", mode, bad ? "bad" : "ok");
      continue;
    }
    printf("got: %s", buf);
  }
}
