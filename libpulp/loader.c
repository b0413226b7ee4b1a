/*
 * loader.c: tells whether this thread is inside the dynamic loader.
 *
 * The loader serialises dlopen, dlclose, dlsym and dl_iterate_phdr with
 * recursive mutexes in ld.so's _rtld_global (_dl_load_lock and
 * _dl_load_write_lock, and since glibc 2.35 _dl_load_tls_lock), also taken
 * by glibc's internal loads (NSS, iconv). A thread that holds one of them is
 * in the middle of changing the list of loaded objects, and a dlopen of ours
 * on that thread would re-enter it.
 *
 * Rather than hard-coding the offsets of these locks per glibc version (what
 * libpulp does, exiting on an unknown glibc), ulp_loader_init measures them:
 * inside a dl_iterate_phdr callback this thread holds _dl_load_write_lock,
 * so it is the one recursive mutex in _rtld_global owned by this thread.
 * _dl_load_lock is the recursive mutex just before it. If the measurement
 * fails, patching is disabled (state BROKEN), never the process.
 */
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runtime.h"

#define MAX_LOCKS 3

static pthread_mutex_t *locks[MAX_LOCKS];
static int nlocks;

static int is_recursive(const pthread_mutex_t *m) {
  return (m->__data.__kind & 3) == PTHREAD_MUTEX_RECURSIVE_NP;
}

struct scan {
  unsigned char *base;
  size_t size;
  pid_t tid;
  size_t first, found; /* offsets of the lowest and highest owned mutex */
  int matches;
};

static int scan_cb(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)info;
  (void)size;
  struct scan *s = arg;
  for (size_t off = 0; off + sizeof(pthread_mutex_t) <= s->size; off += 8) {
    pthread_mutex_t *m = (pthread_mutex_t *)(s->base + off);
    if (m->__data.__owner == s->tid && m->__data.__lock != 0 && m->__data.__count >= 1 &&
        is_recursive(m)) {
      if (s->matches++ == 0)
        s->first = off;
      s->found = off;
    }
  }
  return 1; /* one callback is enough */
}

int ulp_loader_init(const char **why) {
  void *rtld = dlsym(RTLD_DEFAULT, "_rtld_global");
  Dl_info info;
  const ElfW(Sym) *sym = NULL;
  if (!rtld || !dladdr1(rtld, &info, (void **)&sym, RTLD_DL_SYMENT) || !sym ||
      sym->st_size < 2 * sizeof(pthread_mutex_t)) {
    *why = "cannot find the dynamic loader's _rtld_global";
    return -1;
  }
  struct scan s = {.base = rtld, .size = sym->st_size, .tid = (pid_t)syscall(SYS_gettid)};
  dl_iterate_phdr(scan_cb, &s);
  /* Two matches when we were dlopen'ed: our constructor then runs under
     _dl_load_lock too, which must be the mutex just before. */
  int ok = s.matches == 1 || (s.matches == 2 && s.first + sizeof(pthread_mutex_t) == s.found);
  if (!ok || s.found < sizeof(pthread_mutex_t)) {
    *why = "cannot locate the dynamic loader's locks in _rtld_global";
    return -1;
  }
  pthread_mutex_t *write_lock = (pthread_mutex_t *)(s.base + s.found);
  pthread_mutex_t *load_lock = write_lock - 1;
  if (!is_recursive(load_lock)) {
    *why = "the dynamic loader's _dl_load_lock is not where expected";
    return -1;
  }
  locks[nlocks++] = load_lock;
  locks[nlocks++] = write_lock;
  /* glibc >= 2.35: _dl_load_tls_lock follows; an unowned recursive mutex. */
  pthread_mutex_t *tls_lock = write_lock + 1;
  if (s.found + 2 * sizeof(pthread_mutex_t) <= s.size && is_recursive(tls_lock) &&
      tls_lock->__data.__lock == 0 && tls_lock->__data.__owner == 0)
    locks[nlocks++] = tls_lock;
  return 0;
}

/* ulp_in_loader reports whether this thread holds one of the locks, or may
   be in the middle of taking or releasing one: glibc sets __owner after the
   lock word is taken and clears it before the lock word is released, so a
   taken lock word with no owner is a thread between the two. That thread
   may be this one, frozen there; if it is another, the answer is only a
   spurious retry. */
int ulp_in_loader(void) {
  pid_t tid = (pid_t)syscall(SYS_gettid);
  for (int i = 0; i < nlocks; i++) {
    int owner = __atomic_load_n(&locks[i]->__data.__owner, __ATOMIC_ACQUIRE);
    int word = __atomic_load_n(&locks[i]->__data.__lock, __ATOMIC_ACQUIRE);
    if (owner == tid || (owner == 0 && word != 0))
      return 1;
  }
  return 0;
}
