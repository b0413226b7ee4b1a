/*
 * runtime.c: the exported ABI block, its constructor, the message ring and
 * the LIBPULP_DISABLE_ON_PATH/USERS/GROUPS opt-outs.
 *
 * The constructor starts no thread, installs no signal handler and never
 * exits: anything unexpected sets state BROKEN with a reason instead.
 */
#include <fnmatch.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime.h"

/* The exported block; the only data symbol in .dynsym. */
__attribute__((visibility("default"), aligned(64))) struct ulp_abi ulp_abi;

/* The initial ledger: bytes owned and written by the agent. In .bss, so it
   costs nothing until the first patch touches it. */
static char ulp_static_ledger[ULP_STATIC_LEDGER_SIZE] __attribute__((aligned(64)));

void ulp_text_str(struct ulp_text *t, const char *s) {
  while (*s && t->len < sizeof t->buf - 1)
    t->buf[t->len++] = *s++;
  t->buf[t->len] = '\0';
}

static void text_num(struct ulp_text *t, uint64_t v, unsigned base) {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = "0123456789abcdef"[v % base];
    v /= base;
  } while (v);
  while (n > 0 && t->len < sizeof t->buf - 1)
    t->buf[t->len++] = tmp[--n];
  t->buf[t->len] = '\0';
}

void ulp_text_u64(struct ulp_text *t, uint64_t v) { text_num(t, v, 10); }

void ulp_text_hex(struct ulp_text *t, uint64_t v) {
  ulp_text_str(t, "0x");
  text_num(t, v, 16);
}

void ulp_ring_append(const char *line) {
  struct ulp_ring *r = &ulp_abi.ring;
  /* Become the writer: move seq from even to odd. An odd seq left by a
     writer that died (an agent killed mid-write) is stepped over by 2, which
     keeps it odd while we write. */
  uint64_t seq = __atomic_load_n(&r->seq, __ATOMIC_RELAXED), start;
  do {
    start = (seq & 1) ? seq + 2 : seq + 1;
  } while (!__atomic_compare_exchange_n(&r->seq, &seq, start, 1, __ATOMIC_ACQUIRE,
                                        __ATOMIC_RELAXED));
  __atomic_thread_fence(__ATOMIC_RELEASE);
  uint64_t head = __atomic_load_n(&r->head, __ATOMIC_RELAXED);
  size_t n = strlen(line);
  if (n > ULP_RING_SIZE - 1)
    n = ULP_RING_SIZE - 1;
  for (size_t i = 0; i < n; i++)
    r->buf[(head + i) % ULP_RING_SIZE] = line[i];
  r->buf[(head + n) % ULP_RING_SIZE] = '\n';
  __atomic_store_n(&r->head, head + n + 1, __ATOMIC_RELAXED);
  __atomic_store_n(&r->seq, start + 1, __ATOMIC_RELEASE);
}

void ulp_disable(uint32_t state, const char *reason) {
  if (__atomic_load_n(&ulp_abi.state, __ATOMIC_RELAXED) != ULP_STATE_READY)
    return;
  size_t n = strnlen(reason, ULP_REASON_MAX - 1);
  memcpy(ulp_abi.reason, reason, n);
  ulp_abi.reason[n] = '\0';
  __atomic_store_n(&ulp_abi.state, state, __ATOMIC_RELEASE);
  struct ulp_text t = {0};
  ulp_text_str(&t, state == ULP_STATE_USER_OFF ? "patching disabled: " : "runtime broken: ");
  ulp_text_str(&t, reason);
  ulp_ring_append(t.buf);
}

/* match_list reports whether any ':'-separated fnmatch pattern of list
   matches one of the names, and copies the pattern that did into hit. */
static int match_list(const char *list, const char *const *names, char *hit, size_t hitsz) {
  const char *p = list;
  while (*p) {
    const char *end = strchr(p, ':');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    if (n > 0 && n < hitsz) {
      memcpy(hit, p, n);
      hit[n] = '\0';
      for (const char *const *nm = names; *nm; nm++)
        if (**nm && fnmatch(hit, *nm, FNM_EXTMATCH) == 0)
          return 1;
    }
    if (!end)
      break;
    p = end + 1;
  }
  return 0;
}

static void opt_out(const char *var, const char *const *names) {
  const char *list = getenv(var);
  char hit[ULP_NAME_MAX];
  if (!list || !*list || !match_list(list, names, hit, sizeof hit))
    return;
  struct ulp_text t = {0};
  ulp_text_str(&t, var);
  ulp_text_str(&t, " matched ");
  ulp_text_str(&t, hit);
  ulp_disable(ULP_STATE_USER_OFF, t.buf);
}

/* apply_opt_outs checks the three opt-out variables. The user and group
   databases are consulted only when the corresponding variable is set. */
static void apply_opt_outs(void) {
  if (getenv("LIBPULP_DISABLE_ON_PATH")) {
    static char exe[ULP_PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    const char *names[] = {exe, NULL};
    opt_out("LIBPULP_DISABLE_ON_PATH", names);
  }
  if (getenv("LIBPULP_DISABLE_ON_USERS")) {
    struct ulp_text uid = {0};
    ulp_text_u64(&uid, getuid());
    char buf[1024];
    struct passwd pw, *res = NULL;
    const char *name = "";
    if (getpwuid_r(getuid(), &pw, buf, sizeof buf, &res) == 0 && res)
      name = res->pw_name;
    const char *names[] = {uid.buf, name, NULL};
    opt_out("LIBPULP_DISABLE_ON_USERS", names);
  }
  if (getenv("LIBPULP_DISABLE_ON_GROUPS")) {
    gid_t gids[1025];
    int n = getgroups(0, NULL);
    n = getgroups(n < 0 ? 0 : n > 1024 ? 1024 : n, gids);
    if (n < 0) /* more than 1024 groups, or they changed: the primary only */
      n = 0;
    gids[n++] = getgid();
    for (int i = 0; i < n && ulp_abi.state == ULP_STATE_READY; i++) {
      struct ulp_text gid = {0};
      ulp_text_u64(&gid, gids[i]);
      char buf[4096];
      struct group gr, *res = NULL;
      const char *name = "";
      if (getgrgid_r(gids[i], &gr, buf, sizeof buf, &res) == 0 && res)
        name = res->gr_name;
      const char *names[] = {gid.buf, name, NULL};
      opt_out("LIBPULP_DISABLE_ON_GROUPS", names);
    }
  }
}

__attribute__((constructor)) static void ulp_init(void) {
  ulp_abi.version = ULP_ABI_VERSION;
  ulp_abi.size = sizeof ulp_abi;
  ulp_abi.entry = (uint64_t)(uintptr_t)ulp_entry_stub;
  ulp_abi.ledger = (uint64_t)(uintptr_t)ulp_static_ledger;
  ulp_abi.ledger_cap = sizeof ulp_static_ledger;
  ulp_abi.loaded_at = (uint64_t)time(NULL);
  memcpy(ulp_abi.version_str, ULP_RUNTIME_VERSION, sizeof ULP_RUNTIME_VERSION);
  ulp_ring_append("libpulp loaded (version " ULP_RUNTIME_VERSION ")");
  ulp_entry_init();
  ulp_interpose_init();
  const char *why = NULL;
  if (ulp_loader_init(&why) != 0)
    ulp_disable(ULP_STATE_BROKEN, why);
  apply_opt_outs();
  ulp_active_apply();
  /* The magic last: an agent trusts nothing before it. */
  __atomic_store_n(&ulp_abi.magic, ULP_ABI_MAGIC, __ATOMIC_RELEASE);
}
