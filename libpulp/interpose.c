/*
 * interpose.c: thin wrappers around the allocator that keep a per-thread
 * busy counter, so the runtime refuses (ULP_EAGAIN) to dlopen a container on
 * a thread that was interrupted inside malloc and may hold an arena lock.
 * glibc's own internal allocations go through these symbols too (its calls
 * to malloc are interposable). fork, malloc_trim, malloc_stats and
 * malloc_info are wrapped as well: they take every arena lock directly.
 *
 * Each wrapper forwards to the next definition, found with dlsym(RTLD_NEXT)
 * on first use. While that lookup runs (dlsym itself allocates), and for any
 * function the lookup cannot find, the wrappers use glibc's __libc_*
 * entry points, so constructors that run before ours still work.
 *
 * The loader entry points (dlopen, dlsym, dl_iterate_phdr...) are not
 * wrapped: glibc resolves $ORIGIN, RUNPATH and RTLD_NEXT relative to their
 * caller's return address, which a wrapper would replace by ours. loader.c
 * checks the loader's own locks instead.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "runtime.h"

#define EXPORT __attribute__((visibility("default")))
#define TLS_IE __thread __attribute__((tls_model("initial-exec")))

/* glibc's own allocator entry points; weak, so a libc without one of them
   still loads us. */
extern void *__libc_malloc(size_t) __attribute__((weak));
extern void __libc_free(void *) __attribute__((weak));
extern void *__libc_calloc(size_t, size_t) __attribute__((weak));
extern void *__libc_realloc(void *, size_t) __attribute__((weak));
extern void *__libc_memalign(size_t, size_t) __attribute__((weak));
extern void *__libc_valloc(size_t) __attribute__((weak));
extern void *__libc_pvalloc(size_t) __attribute__((weak));

/* busy counts the allocator calls this thread is inside; resolving is set
   while this thread runs the dlsym lookups. */
static TLS_IE volatile unsigned int busy;
static TLS_IE unsigned int resolving;

static struct {
  void *(*malloc)(size_t);
  void (*free)(void *);
  void *(*calloc)(size_t, size_t);
  void *(*realloc)(void *, size_t);
  void *(*memalign)(size_t, size_t);
  void *(*aligned_alloc)(size_t, size_t);
  int (*posix_memalign)(void **, size_t, size_t);
  void *(*valloc)(size_t);
  void *(*pvalloc)(size_t);
  pid_t (*fork)(void);
  int (*malloc_trim)(size_t);
  void (*malloc_stats)(void);
  int (*malloc_info)(int, FILE *);
} next;
static int resolved;

int ulp_in_malloc(void) { return busy != 0; }

#define NEXT(f) __atomic_load_n(&next.f, __ATOMIC_ACQUIRE)
#define LOOKUP(f) __atomic_store_n(&next.f, (__typeof__(next.f))dlsym(RTLD_NEXT, #f), __ATOMIC_RELEASE)

/* resolve looks the next definitions up once. Concurrent first calls may
   both look up: they store the same values. */
static void resolve(void) {
  if (__atomic_load_n(&resolved, __ATOMIC_ACQUIRE) || resolving)
    return;
  resolving = 1;
  LOOKUP(malloc);
  LOOKUP(free);
  LOOKUP(calloc);
  LOOKUP(realloc);
  LOOKUP(memalign);
  LOOKUP(aligned_alloc);
  LOOKUP(posix_memalign);
  LOOKUP(valloc);
  LOOKUP(pvalloc);
  LOOKUP(fork);
  LOOKUP(malloc_trim);
  LOOKUP(malloc_stats);
  LOOKUP(malloc_info);
  resolving = 0;
  __atomic_store_n(&resolved, 1, __ATOMIC_RELEASE);
}

void ulp_interpose_init(void) {
  resolve();
  if (!NEXT(malloc) || !NEXT(free) || !NEXT(calloc) || !NEXT(realloc))
    ulp_disable(ULP_STATE_BROKEN, "cannot find the next malloc/free/calloc/realloc");
}

/* ENTER resolves on first use and marks this thread busy. */
#define ENTER() \
  do {          \
    busy++;     \
    resolve();  \
  } while (0)
#define LEAVE() busy--

EXPORT void *malloc(size_t n) {
  ENTER();
  void *(*f)(size_t) = NEXT(malloc);
  void *p = f ? f(n) : __libc_malloc ? __libc_malloc(n) : NULL;
  LEAVE();
  return p;
}

EXPORT void free(void *p) {
  ENTER();
  void (*f)(void *) = NEXT(free);
  if (f)
    f(p);
  else if (__libc_free)
    __libc_free(p);
  LEAVE();
}

EXPORT void *calloc(size_t n, size_t sz) {
  ENTER();
  void *(*f)(size_t, size_t) = NEXT(calloc);
  void *p = f ? f(n, sz) : __libc_calloc ? __libc_calloc(n, sz) : NULL;
  LEAVE();
  return p;
}

EXPORT void *realloc(void *old, size_t n) {
  ENTER();
  void *(*f)(void *, size_t) = NEXT(realloc);
  void *p = f ? f(old, n) : __libc_realloc ? __libc_realloc(old, n) : NULL;
  LEAVE();
  return p;
}

EXPORT void *memalign(size_t align, size_t n) {
  ENTER();
  void *(*f)(size_t, size_t) = NEXT(memalign);
  void *p = f ? f(align, n) : __libc_memalign ? __libc_memalign(align, n) : NULL;
  LEAVE();
  return p;
}

EXPORT void *aligned_alloc(size_t align, size_t n) {
  ENTER();
  void *(*f)(size_t, size_t) = NEXT(aligned_alloc);
  void *p = f ? f(align, n) : __libc_memalign ? __libc_memalign(align, n) : NULL;
  LEAVE();
  return p;
}

EXPORT int posix_memalign(void **out, size_t align, size_t n) {
  ENTER();
  int (*f)(void **, size_t, size_t) = NEXT(posix_memalign);
  int r;
  if (f) {
    r = f(out, align, n);
  } else if (align < sizeof(void *) || (align & (align - 1)) != 0) {
    r = EINVAL;
  } else {
    void *p = __libc_memalign ? __libc_memalign(align, n) : NULL;
    r = p ? 0 : ENOMEM;
    if (p)
      *out = p;
  }
  LEAVE();
  return r;
}

EXPORT void *valloc(size_t n) {
  ENTER();
  void *(*f)(size_t) = NEXT(valloc);
  void *p = f ? f(n) : __libc_valloc ? __libc_valloc(n) : NULL;
  LEAVE();
  return p;
}

EXPORT void *pvalloc(size_t n) {
  ENTER();
  void *(*f)(size_t) = NEXT(pvalloc);
  void *p = f ? f(n) : __libc_pvalloc ? __libc_pvalloc(n) : NULL;
  LEAVE();
  return p;
}

EXPORT pid_t fork(void) {
  ENTER();
  pid_t (*f)(void) = NEXT(fork);
  pid_t r = -1;
  if (f)
    r = f();
  else
    errno = ENOSYS;
  LEAVE(); /* in the parent and in the child */
  return r;
}

EXPORT int malloc_trim(size_t pad) {
  ENTER();
  int (*f)(size_t) = NEXT(malloc_trim);
  int r = f ? f(pad) : 0;
  LEAVE();
  return r;
}

EXPORT void malloc_stats(void) {
  ENTER();
  void (*f)(void) = NEXT(malloc_stats);
  if (f)
    f();
  LEAVE();
}

EXPORT int malloc_info(int options, FILE *fp) {
  ENTER();
  int (*f)(int, FILE *) = NEXT(malloc_info);
  int r = -1;
  if (f)
    r = f(options, fp);
  else
    errno = ENOSYS;
  LEAVE();
  return r;
}
