/* distro: 8 threads call labs() of the system's libc.so.6 and
 * OPENSSL_hexchar2int() of the system's libcrypto.so.3 in a loop and check
 * every result: it must be the original function's or the livepatch's
 * (lp_distro.c), nothing else. Queries on stdin: "stats" prints
 * "labs_old labs_new hex_old hex_new wrong". */
#define _GNU_SOURCE
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#define NTHREADS 8
#define NEW_LABS (1L << 40) /* lp_distro.c adds this */
#define NEW_HEX 100         /* and this to a valid digit */

struct counts {
  _Atomic unsigned long labs_old, labs_new, hex_old, hex_new, wrong;
  char pad[64];
};
static struct counts counts[NTHREADS];

static int hexval(unsigned char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

#ifdef FAR
/* reserve_around fills every free gap within 3 GiB of addr with an
 * inaccessible reservation: a container loaded later is then mapped beyond
 * the reach of a jmp rel32 from libc and libcrypto. */
static void reserve_around(uintptr_t addr) {
  const uintptr_t span = 3UL << 30;
  uintptr_t lo = (addr - span) & ~4095UL, hi = (addr + span) & ~4095UL, prev = lo;
  FILE *f = fopen("/proc/self/maps", "r");
  if (!f)
    exit(1);
  uintptr_t gaps[1024][2];
  int n = 0;
  char line[512];
  while (fgets(line, sizeof line, f) && n < 1024) {
    uintptr_t s, e;
    if (sscanf(line, "%lx-%lx", &s, &e) != 2)
      continue;
    if (s > prev && prev < hi)
      gaps[n][0] = prev, gaps[n][1] = s < hi ? s : hi, n++;
    if (e > prev)
      prev = e;
  }
  fclose(f);
  if (prev < hi)
    gaps[n][0] = prev, gaps[n][1] = hi, n++;
  for (int i = 0; i < n; i++)
    if (gaps[i][1] > gaps[i][0] &&
        mmap((void *)gaps[i][0], gaps[i][1] - gaps[i][0], PROT_NONE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0) == MAP_FAILED)
      exit(1);
}
#endif

static void *worker(void *arg) {
  struct counts *c = arg;
  /* Lowest priority: on a small shared machine the agent then gets the CPU
   * it needs to stop 8 spinning threads quickly. */
  setpriority(PRIO_PROCESS, (id_t)gettid(), 19);
  unsigned long i = (unsigned long)(c - counts) * 7919;
  for (;;) {
    i++;
    long x = (long)(i % 2000003) - 1000001;
    long r = labs(x);
    long a = x < 0 ? -x : x;
    if (r == a)
      atomic_fetch_add_explicit(&c->labs_old, 1, memory_order_relaxed);
    else if (r == a + NEW_LABS)
      atomic_fetch_add_explicit(&c->labs_new, 1, memory_order_relaxed);
    else {
      fprintf(stderr, "labs(%ld) = %ld\n", x, r);
      atomic_fetch_add_explicit(&c->wrong, 1, memory_order_relaxed);
    }
    unsigned char ch = (unsigned char)(i * 37);
    int h = OPENSSL_hexchar2int(ch);
    int v = hexval(ch);
    if (h == v)
      atomic_fetch_add_explicit(&c->hex_old, 1, memory_order_relaxed);
    else if (v >= 0 && h == v + NEW_HEX)
      atomic_fetch_add_explicit(&c->hex_new, 1, memory_order_relaxed);
    else {
      fprintf(stderr, "OPENSSL_hexchar2int(%d) = %d\n", ch, h);
      atomic_fetch_add_explicit(&c->wrong, 1, memory_order_relaxed);
    }
  }
  return NULL;
}

int main(void) {
  pthread_t th[NTHREADS];
#ifdef FAR
  reserve_around((uintptr_t)labs);
#endif
  for (int i = 0; i < NTHREADS; i++)
    if (pthread_create(&th[i], NULL, worker, &counts[i]) != 0)
      return 1;
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("ready\n");
  char line[64];
  while (fgets(line, sizeof line, stdin)) {
    if (strcmp(line, "stats\n") == 0) {
      unsigned long s[5] = {0};
      for (int i = 0; i < NTHREADS; i++) {
        s[0] += atomic_load(&counts[i].labs_old);
        s[1] += atomic_load(&counts[i].labs_new);
        s[2] += atomic_load(&counts[i].hex_old);
        s[3] += atomic_load(&counts[i].hex_new);
        s[4] += atomic_load(&counts[i].wrong);
      }
      printf("%lu %lu %lu %lu %lu\n", s[0], s[1], s[2], s[3], s[4]);
    } else {
      printf("unknown query\n");
    }
  }
  return 0;
}
