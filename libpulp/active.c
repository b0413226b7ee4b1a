/*
 * active.c: patch-on-start. The constructor applies, before main, every
 * livepatch container of the active folder (LIBPULP_ACTIVE_DIR, default
 * /var/lib/ulp/active) to this process, so a process started after a
 * rollout carries the fix from its first call, and records each patch in
 * the ledger exactly as the agent would (livepatch/ledger's format, see
 * ulp_abi.h): `ulp patches`, `ulp trigger --revert` and `--revert-all`
 * then treat it like any other patch.
 *
 * Rules: nothing here may stop the process from starting. A folder that
 * does not exist costs one failed opendir; anything else that is wrong (an
 * unsafe folder or file, a malformed container, a build-id that differs, code
 * bytes that are not what the container's mechanism expects, a failed
 * dlopen) skips that container and logs one line in the message ring. The
 * folder and its containers must be owned by root or by this process's
 * effective user and not writable by group or others: whoever may write
 * there may change the code of every process that starts. Signatures are
 * checked by the agent that puts containers there, not here.
 *
 * Every check (build-id, mechanism, expected original bytes, code inside
 * the target's executable segment) passes before the container is loaded;
 * code is then written through /proc/self/mem, which writes read-only text
 * without mprotect.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "runtime.h"

#define ACTIVE_DIR_DEFAULT "/var/lib/ulp/active"
#define ULP_MAX_PAYLOAD (16u << 20)
#define MECH_PAD 1
#define MECH_ENTRY 2
#define PAD_LEN 14

/* One function of a container, and where it is in this process. */
struct func {
  uint64_t old_off, new_off, addr, new_addr;
  uint8_t mech, eoff;
};

struct ref {
  uint64_t target_off, patch_off;
  uint8_t tls;
};

/* A parsed .ulp payload; pointers point into the payload buffer. */
struct spec {
  uint8_t id[32];
  const uint8_t *bid;
  uint8_t bidlen;
  char target[ULP_NAME_MAX];
  uint32_t nfuncs, nrefs;
  struct func *funcs;
  struct ref *refs;
};

/* The ledger being built: patches in order, stacks sorted by address. */
struct lpatch {
  uint8_t id[32];
  int64_t at;
  char *container;
  char target[ULP_NAME_MAX];
  uint8_t bid[255], bidlen;
  uint32_t nred;
  uint64_t *red; /* old, new pairs */
  uint16_t nlabels;
  char **labels;
};

struct lentry {
  uint8_t id[32];
  uint64_t new_addr;
};

struct lstack {
  uint64_t addr;
  uint8_t mech, eoff, orig[5], origlen;
  uint32_t n;
  struct lentry *e;
};

static struct lpatch *patches;
static size_t npatches;
static struct lstack *stacks;
static size_t nstacks;
static int memfd = -1;

static void ring_log(const char *a, const char *b, const char *c) {
  struct ulp_text t = {0};
  ulp_text_str(&t, "patch-on-start: ");
  ulp_text_str(&t, a);
  ulp_text_str(&t, b);
  ulp_text_str(&t, c);
  ulp_ring_append(t.buf);
}

/* safe reports whether st is owned by root or the effective user and not
   writable by group or others. */
static int safe(const struct stat *st) {
  return (st->st_uid == 0 || st->st_uid == geteuid()) && !(st->st_mode & 022);
}

static int read_at(int fd, void *buf, size_t n, uint64_t off) {
  char *p = buf;
  while (n > 0) {
    ssize_t r = pread(fd, p, n, (off_t)off);
    if (r <= 0)
      return -1;
    p += r, n -= (size_t)r, off += (uint64_t)r;
  }
  return 0;
}

static const char no_section[] = "no .ulp section (not a livepatch container)";

/* read_section returns the malloc'ed contents of the section name (at most
   max bytes) of the ELF file fd (size bytes) in *out, or an error text:
   no_section when there is none. */
static const char *read_section(int fd, uint64_t size, const char *name, uint64_t max, uint8_t **out,
                                uint64_t *outlen) {
  Elf64_Ehdr eh;
  if (read_at(fd, &eh, sizeof eh, 0) != 0 || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
      eh.e_ident[EI_CLASS] != ELFCLASS64)
    return "not a 64-bit ELF file";
  if (eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shnum == 0 || eh.e_shnum >= 65280 ||
      eh.e_shstrndx >= eh.e_shnum || eh.e_shoff > size ||
      (uint64_t)eh.e_shnum * sizeof(Elf64_Shdr) > size - eh.e_shoff)
    return "bad section header table";
  const char *err = NULL;
  Elf64_Shdr *sh = malloc((size_t)eh.e_shnum * sizeof *sh);
  char *names = NULL;
  if (!sh || read_at(fd, sh, (size_t)eh.e_shnum * sizeof *sh, eh.e_shoff) != 0) {
    err = "cannot read the section headers";
    goto out;
  }
  Elf64_Shdr *ns = &sh[eh.e_shstrndx];
  if (ns->sh_offset > size || ns->sh_size > size - ns->sh_offset || ns->sh_size > (1u << 20) ||
      !(names = malloc(ns->sh_size + 1)) || read_at(fd, names, ns->sh_size, ns->sh_offset) != 0) {
    err = "bad section names";
    goto out;
  }
  names[ns->sh_size] = '\0';
  for (unsigned i = 0; i < eh.e_shnum; i++) {
    if (sh[i].sh_name >= ns->sh_size || strcmp(names + sh[i].sh_name, name) != 0)
      continue;
    if (sh[i].sh_type == SHT_NOBITS || sh[i].sh_offset > size ||
        sh[i].sh_size > size - sh[i].sh_offset || sh[i].sh_size > max) {
      err = "bad .ulp section";
      goto out;
    }
    *out = malloc(sh[i].sh_size ? sh[i].sh_size : 1);
    if (!*out || read_at(fd, *out, sh[i].sh_size, sh[i].sh_offset) != 0) {
      free(*out);
      *out = NULL;
      err = "cannot read a .ulp section";
      goto out;
    }
    *outlen = sh[i].sh_size;
    goto out;
  }
  err = no_section;
out:
  free(sh);
  free(names);
  return err;
}

/* A bounded little-endian reader; after the first overrun it stays failed. */
struct rd {
  const uint8_t *p;
  uint64_t left;
  int bad;
};

static const uint8_t *take(struct rd *r, uint64_t n) {
  if (r->bad || n > r->left) {
    r->bad = 1;
    return NULL;
  }
  const uint8_t *p = r->p;
  r->p += n, r->left -= n;
  return p;
}

static uint64_t le(struct rd *r, unsigned n) {
  const uint8_t *p = take(r, n);
  uint64_t v = 0;
  for (unsigned i = 0; p && i < n; i++)
    v |= (uint64_t)p[i] << (8 * i);
  return v;
}

/* str16 skips a non-empty string and returns it (not NUL-terminated). */
static const uint8_t *str16(struct rd *r, uint16_t *n) {
  *n = (uint16_t)le(r, 2);
  if (*n == 0)
    r->bad = 1;
  return take(r, *n);
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* parse reads an apply payload (docs/container-format.md) into s. */
static const char *parse(const uint8_t *b, uint64_t n, struct spec *s) {
  struct rd r = {b, n, 0};
  const uint8_t *h = take(&r, 8);
  if (!h || memcmp(h, "ULPC", 4) != 0 || h[4] != 1 || h[5] != 0 || h[6] != 1 || h[7] != 0)
    return "bad .ulp header";
  memcpy(s->id, take(&r, 32) ?: (const uint8_t[32]){0}, 32);
  s->bidlen = (uint8_t)le(&r, 1);
  s->bid = take(&r, s->bidlen);
  uint16_t tn;
  const uint8_t *t = str16(&r, &tn);
  if (r.bad || s->bidlen == 0 || tn >= ULP_NAME_MAX || memchr(t, '/', tn) || memchr(t, 0, tn))
    return "bad .ulp target";
  memcpy(s->target, t, tn);
  s->target[tn] = '\0';
  s->nfuncs = (uint32_t)le(&r, 4);
  if (r.bad || s->nfuncs == 0 || s->nfuncs > r.left / 22)
    return "bad .ulp function count";
  s->funcs = calloc(s->nfuncs, sizeof *s->funcs);
  if (!s->funcs)
    return "out of memory";
  for (uint32_t i = 0; i < s->nfuncs; i++) {
    uint16_t l;
    str16(&r, &l);
    str16(&r, &l);
    struct func *f = &s->funcs[i];
    f->old_off = le(&r, 8);
    f->new_off = le(&r, 8);
    f->mech = (uint8_t)le(&r, 1);
    f->eoff = (uint8_t)le(&r, 1);
    if (r.bad || (f->mech != MECH_PAD && f->mech != MECH_ENTRY) || (f->eoff != 0 && f->eoff != 4))
      return "bad .ulp function";
  }
  uint64_t *olds = malloc(s->nfuncs * sizeof *olds);
  if (!olds)
    return "out of memory";
  for (uint32_t i = 0; i < s->nfuncs; i++)
    olds[i] = s->funcs[i].old_off;
  qsort(olds, s->nfuncs, sizeof *olds, cmp_u64);
  int dup = 0;
  for (uint32_t i = 1; i < s->nfuncs; i++)
    dup |= olds[i] == olds[i - 1];
  free(olds);
  if (dup)
    return "bad .ulp: a function listed twice";
  s->nrefs = (uint32_t)le(&r, 4);
  if (r.bad || s->nrefs > r.left / 21)
    return "bad .ulp reference count";
  s->refs = calloc(s->nrefs ? s->nrefs : 1, sizeof *s->refs);
  if (!s->refs)
    return "out of memory";
  for (uint32_t i = 0; i < s->nrefs; i++) {
    uint16_t l;
    str16(&r, &l);
    str16(&r, &l);
    s->refs[i].target_off = le(&r, 8);
    s->refs[i].patch_off = le(&r, 8);
    uint8_t fl = (uint8_t)le(&r, 1);
    if (r.bad || (fl & ~1u))
      return "bad .ulp reference";
    s->refs[i].tls = fl & 1;
  }
  if (r.bad || r.left != 0)
    return "bad .ulp payload length";
  return NULL;
}

/* Bug labels, as container.Labels finds them in .ulp.comments: the regular
   expression (?i)\b(?:cve-\d{4}-\d{4,}|bsc#\d+|boo#\d+|jsc#[a-z]+-\d+)\b,
   leftmost non-overlapping matches, in canonical case (CVE-…, bsc#…, boo#…,
   jsc#UPPER-…), without repeats. */
static int word(uint8_t c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int digit(uint8_t c) { return c >= '0' && c <= '9'; }

static int alpha(uint8_t c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }

static int prefix(const uint8_t *c, size_t n, size_t i, const char *p) {
  size_t k = strlen(p);
  if (n - i < k)
    return 0;
  for (size_t j = 0; j < k; j++)
    if ((alpha(c[i + j]) ? c[i + j] | 0x20 : c[i + j]) != (uint8_t)p[j])
      return 0;
  return 1;
}

/* label_at returns the length of a label starting at c[i], or 0. */
static size_t label_at(const uint8_t *c, size_t n, size_t i) {
  if (i > 0 && word(c[i - 1]))
    return 0;
  size_t j = i + 4, k;
  if (prefix(c, n, i, "cve-")) {
    for (k = j; k < n && digit(c[k]); k++)
      ;
    if (k - j != 4 || k >= n || c[k] != '-')
      return 0;
    j = k + 1;
    for (k = j; k < n && digit(c[k]); k++)
      ;
    if (k - j < 4)
      return 0;
  } else if (prefix(c, n, i, "bsc#") || prefix(c, n, i, "boo#")) {
    for (k = j; k < n && digit(c[k]); k++)
      ;
    if (k == j)
      return 0;
  } else if (prefix(c, n, i, "jsc#")) {
    for (k = j; k < n && alpha(c[k]); k++)
      ;
    if (k == j || k >= n || c[k] != '-')
      return 0;
    j = k + 1;
    for (k = j; k < n && digit(c[k]); k++)
      ;
    if (k == j)
      return 0;
  } else {
    return 0;
  }
  return k < n && word(c[k]) ? 0 : k - i;
}

/* find_labels fills p->labels from the comments c (n bytes). */
static int find_labels(const uint8_t *c, size_t n, struct lpatch *p) {
  for (size_t i = 0; i < n;) {
    size_t l = label_at(c, n, i);
    if (!l) {
      i++;
      continue;
    }
    char *lab = malloc(l + 1);
    if (!lab)
      return -1;
    for (size_t k = 0; k < l; k++) {
      uint8_t ch = c[i + k];
      int cve = c[i] == 'c' || c[i] == 'C', jsc = c[i] == 'j' || c[i] == 'J';
      if (alpha(ch))
        ch = (cve || (jsc && k >= 4)) ? (uint8_t)(ch & ~0x20) : (uint8_t)(ch | 0x20);
      lab[k] = (char)ch;
    }
    lab[l] = '\0';
    i += l;
    int dup = 0;
    for (uint16_t k = 0; k < p->nlabels && !dup; k++)
      dup = strcmp(p->labels[k], lab) == 0;
    if (dup || p->nlabels == UINT16_MAX) {
      free(lab);
      continue;
    }
    char **nl = realloc(p->labels, (p->nlabels + 1u) * sizeof *nl);
    if (!nl) {
      free(lab);
      return -1;
    }
    p->labels = nl;
    p->labels[p->nlabels++] = lab;
  }
  return 0;
}

/* The target object, found by dl_iterate_phdr. */
struct obj {
  const char *name, *exe;
  int found;
  uint64_t bias, modid;
  const uint8_t *bid;
  uint32_t bidlen;
  const ElfW(Phdr) *phdr;
  ElfW(Half) phnum;
};

static const char *base_name(const char *p) {
  const char *s = strrchr(p, '/');
  return s ? s + 1 : p;
}

static int find_obj(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  struct obj *o = arg;
  const char *name = info->dlpi_name && info->dlpi_name[0] ? base_name(info->dlpi_name) : o->exe;
  if (strcmp(name, o->name) != 0)
    return 0;
  o->found = 1;
  o->bias = info->dlpi_addr;
  o->modid = info->dlpi_tls_modid;
  o->phdr = info->dlpi_phdr;
  o->phnum = info->dlpi_phnum;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_NOTE)
      continue;
    const uint8_t *p = (const uint8_t *)(info->dlpi_addr + ph->p_vaddr), *end = p + ph->p_memsz;
    while (p + sizeof(ElfW(Nhdr)) <= end) {
      const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)p;
      const uint8_t *nm = p + sizeof *nh, *desc = nm + ((nh->n_namesz + 3) & ~3u);
      if (desc + nh->n_descsz > end)
        break;
      if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && memcmp(nm, "GNU", 4) == 0) {
        o->bid = desc;
        o->bidlen = nh->n_descsz;
        return 1;
      }
      p = desc + ((nh->n_descsz + 3) & ~3u);
    }
  }
  return 1;
}

/* in_text reports whether [a, a+n) lies in an executable segment of o. */
static int in_segment(const struct obj *o, uint64_t a, uint64_t n, uint32_t flags) {
  for (int i = 0; i < o->phnum; i++) {
    const ElfW(Phdr) *ph = &o->phdr[i];
    uint64_t lo = o->bias + ph->p_vaddr;
    if (ph->p_type == PT_LOAD && (ph->p_flags & flags) == flags && a >= lo && a - lo <= ph->p_memsz &&
        n <= ph->p_memsz - (a - lo))
      return 1;
  }
  return 0;
}

static int in_text(const struct obj *o, uint64_t a, uint64_t n) { return in_segment(o, a, n, PF_X); }

/* find_bias finds the loaded object with load bias o->bias (the container,
   known from its link map) and records its program headers. */
static int find_bias(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  struct obj *o = arg;
  if (info->dlpi_addr != o->bias)
    return 0;
  o->found = 1;
  o->phdr = info->dlpi_phdr;
  o->phnum = info->dlpi_phnum;
  return 1;
}

static struct lstack *find_stack(uint64_t addr) {
  for (size_t i = 0; i < nstacks; i++)
    if (stacks[i].addr == addr)
      return &stacks[i];
  return NULL;
}

static const uint8_t endbr64[4] = {0xf3, 0x0f, 0x1e, 0xfa};

/* check_code checks the bytes of a function not patched yet against its
   mechanism: the pad's 14 NOPs and the 2-byte entry NOP, or an entry that
   is not already a jump, after an endbr64 when the entry offset says so. */
static const char *check_code(const struct obj *o, const struct func *f) {
  const uint8_t *c = (const uint8_t *)(uintptr_t)f->addr;
  if (f->mech == MECH_PAD ? !in_text(o, f->addr - PAD_LEN, PAD_LEN + f->eoff + 2)
                         : !in_text(o, f->addr, f->eoff + 5u))
    return "function outside the target's code";
  if (f->eoff == 4 && memcmp(c, endbr64, 4) != 0)
    return "endbr64 expected at the function's entry";
  const uint8_t *e = c + f->eoff;
  if (f->mech == MECH_PAD) {
    for (int i = 1; i <= PAD_LEN; i++)
      if (c[-i] != 0x90)
        return "the pad of a function is not 14 NOPs";
    if (!((e[0] == 0x90 || e[0] == 0x66) && e[1] == 0x90))
      return "the entry of a function is not the 2-byte NOP";
    return NULL;
  }
  if (e[0] == 0xe9 || e[0] == 0xeb)
    return "the entry of a function already jumps";
  return NULL;
}

static int mem_write(uint64_t addr, const void *b, size_t n) {
  return pwrite(memfd, b, n, (off_t)addr) == (ssize_t)n ? 0 : -1;
}

static void put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

/* push records the new entry of f on its stack (created, sorted, when the
   function is first patched), keeping its original bytes. */
static int push(const struct func *f, const uint8_t id[32]) {
  struct lstack *s = find_stack(f->addr);
  if (!s) {
    struct lstack *ns = realloc(stacks, (nstacks + 1) * sizeof *stacks);
    if (!ns)
      return -1;
    stacks = ns;
    size_t i = nstacks;
    while (i > 0 && stacks[i - 1].addr > f->addr) {
      stacks[i] = stacks[i - 1];
      i--;
    }
    nstacks++;
    s = &stacks[i];
    memset(s, 0, sizeof *s);
    s->addr = f->addr;
    s->mech = f->mech;
    s->eoff = f->eoff;
    s->origlen = f->mech == MECH_PAD ? 2 : 5;
    memcpy(s->orig, (const uint8_t *)(uintptr_t)(f->addr + f->eoff), s->origlen);
  }
  struct lentry *ne = realloc(s->e, (s->n + 1) * sizeof *s->e);
  if (!ne)
    return -1;
  s->e = ne;
  memcpy(s->e[s->n].id, id, 32);
  s->e[s->n].new_addr = f->new_addr;
  s->n++;
  return 0;
}

/* write_func redirects f to its replacement. A stacked function keeps its
   mechanism: only the pad's address or the jump's displacement changes. */
static int write_func(const struct lstack *s, const struct func *f) {
  uint8_t b[PAD_LEN];
  if (s->mech == MECH_PAD) {
    static const uint8_t jmp[6] = {0xff, 0x25, 0, 0, 0, 0};
    memcpy(b, jmp, 6);
    put64(b + 6, f->new_addr);
    if (mem_write(s->addr - PAD_LEN, b, PAD_LEN) != 0)
      return -1;
    uint8_t entry[2] = {0xeb, (uint8_t)(int8_t)-(PAD_LEN + s->eoff + 2)};
    return mem_write(s->addr + s->eoff, entry, 2);
  }
  int64_t rel = (int64_t)(f->new_addr - (s->addr + s->eoff + 5));
  b[0] = 0xe9;
  for (int i = 0; i < 4; i++)
    b[1 + i] = (uint8_t)((uint64_t)rel >> (8 * i));
  return mem_write(s->addr + s->eoff, b, 5);
}

/* apply_one applies the container at path (open as fd). It returns NULL or
   the reason it was skipped (nothing written). */
static const char *apply_one(const char *path, int fd, const char *exe, struct ulp_text *detail) {
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
    return "not a regular file";
  if (!safe(&st))
    return "unsafe file (must be owned by root or the process's user, not writable by group or others)";
  uint8_t *payload = NULL;
  uint64_t plen = 0;
  const char *err = read_section(fd, (uint64_t)st.st_size, ".ulp", ULP_MAX_PAYLOAD, &payload, &plen);
  struct spec s = {0};
  void *h = NULL;
  uint8_t *comments = NULL;
  uint64_t clen = 0;
  if (err || (err = parse(payload, plen, &s)))
    goto out;
  err = read_section(fd, (uint64_t)st.st_size, ".ulp.comments", 1u << 20, &comments, &clen);
  if (err == no_section)
    err = NULL;
  if (err)
    goto out;
  struct obj o = {.name = s.target, .exe = exe};
  dl_iterate_phdr(find_obj, &o);
  if (!o.found) {
    err = "target library not loaded";
    goto out;
  }
  if (o.bidlen != s.bidlen || memcmp(o.bid, s.bid, s.bidlen) != 0) {
    err = "build-id mismatch";
    goto out;
  }
  for (size_t i = 0; i < npatches; i++)
    if (memcmp(patches[i].id, s.id, 32) == 0) {
      err = "already applied";
      goto out;
    }
  for (uint32_t i = 0; i < s.nfuncs; i++) {
    s.funcs[i].addr = o.bias + s.funcs[i].old_off;
    if (find_stack(s.funcs[i].addr))
      continue; /* patched by an earlier container: its ledger entry tells */
    if ((err = check_code(&o, &s.funcs[i]))) {
      ulp_text_hex(detail, s.funcs[i].addr);
      goto out;
    }
  }
  for (uint32_t i = 0; i < s.nrefs; i++)
    if (s.refs[i].tls && o.modid == 0) {
      err = "a TLS reference, and the target has no TLS";
      goto out;
    }
  /* Load the checked file itself, not whatever the path names now. */
  char fdpath[64] = "/proc/self/fd/";
  struct ulp_text n = {0};
  ulp_text_u64(&n, (uint64_t)fd);
  strcat(fdpath, n.buf);
  h = dlopen(fdpath, RTLD_NOW | RTLD_LOCAL);
  struct link_map *lm = NULL;
  if (!h || dlinfo(h, RTLD_DI_LINKMAP, &lm) != 0 || !lm) {
    const char *e = dlerror();
    ulp_text_str(detail, e ? e : "dlopen failed");
    err = "load failed";
    goto out;
  }
  /* The replacements must be code of the container, and the references
     its own memory: a damaged offset must not send a write elsewhere. */
  struct obj lp = {.bias = lm->l_addr};
  dl_iterate_phdr(find_bias, &lp);
  if (!lp.found) {
    err = "the loaded container is not found";
    goto out;
  }
  for (uint32_t i = 0; i < s.nrefs; i++)
    if (!in_segment(&lp, lm->l_addr + s.refs[i].patch_off, s.refs[i].tls ? 16 : 8, PF_W)) {
      err = "a reference outside the container's writable memory";
      goto out;
    }
  for (uint32_t i = 0; i < s.nfuncs; i++) {
    struct func *f = &s.funcs[i];
    f->new_addr = lm->l_addr + f->new_off;
    if (!in_text(&lp, f->new_addr, 1)) {
      err = "a replacement outside the container's code";
      goto out;
    }
    struct lstack *sk = find_stack(f->addr);
    uint8_t mech = sk ? sk->mech : f->mech, eoff = sk ? sk->eoff : f->eoff;
    int64_t rel = (int64_t)(f->new_addr - (f->addr + eoff + 5));
    if (mech == MECH_ENTRY && (rel < INT32_MIN || rel > INT32_MAX)) {
      err = "a replacement beyond the ±2 GiB reach of the entry jump (apply it with ulp trigger)";
      goto out;
    }
  }
  for (uint32_t i = 0; i < s.nrefs; i++) {
    uint8_t b[16];
    size_t len = 8;
    if (s.refs[i].tls) {
      put64(b, o.modid);
      put64(b + 8, s.refs[i].target_off);
      len = 16;
    } else {
      put64(b, o.bias + s.refs[i].target_off);
    }
    if (mem_write(lm->l_addr + s.refs[i].patch_off, b, len) != 0) {
      err = "cannot write a data reference through /proc/self/mem";
      goto out;
    }
  }
  /* Record first (nothing can fail after the code writes start but a write
     itself), then write: pads and slots before entries, in function order. */
  struct lpatch *np = realloc(patches, (npatches + 1) * sizeof *patches);
  if (!np) {
    err = "out of memory";
    goto out;
  }
  patches = np;
  struct lpatch *p = &patches[npatches];
  memset(p, 0, sizeof *p);
  memcpy(p->id, s.id, 32);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  p->at = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
  p->container = strdup(path);
  memcpy(p->target, s.target, sizeof p->target);
  memcpy(p->bid, s.bid, s.bidlen);
  p->bidlen = s.bidlen;
  if (find_labels(comments, clen, p) != 0) {
    err = "out of memory";
    goto out;
  }
  p->nred = s.nfuncs;
  p->red = calloc(2 * (size_t)s.nfuncs, sizeof *p->red);
  if (!p->container || !p->red) {
    err = "out of memory";
    goto out;
  }
  for (uint32_t i = 0; i < s.nfuncs; i++) {
    p->red[2 * i] = s.funcs[i].addr;
    p->red[2 * i + 1] = s.funcs[i].new_addr;
    if (push(&s.funcs[i], s.id) != 0) {
      err = "out of memory";
      goto out;
    }
  }
  npatches++;
  for (uint32_t i = 0; i < s.nfuncs; i++)
    if (write_func(find_stack(s.funcs[i].addr), &s.funcs[i]) != 0) {
      ulp_disable(ULP_STATE_BROKEN, "patch-on-start: a code write through /proc/self/mem failed");
      break;
    }
  h = NULL; /* stays loaded */
  ulp_text_u64(detail, s.nfuncs);
  ulp_text_str(detail, " function(s) of ");
  ulp_text_str(detail, s.target);
out:
  if (h)
    dlclose(h);
  free(payload);
  free(comments);
  free(s.funcs);
  free(s.refs);
  return err;
}

/* The ledger encoding of livepatch/ledger (codec.go). */
struct enc {
  uint8_t *b;
  size_t n, cap;
  int bad;
};

static void put(struct enc *e, const void *p, size_t n) {
  if (e->bad)
    return;
  if (e->n + n > e->cap) {
    size_t c = e->cap ? e->cap : 256;
    while (c < e->n + n)
      c *= 2;
    uint8_t *nb = realloc(e->b, c);
    if (!nb) {
      e->bad = 1;
      return;
    }
    e->b = nb, e->cap = c;
  }
  memcpy(e->b + e->n, p, n);
  e->n += n;
}

static void putn(struct enc *e, uint64_t v, unsigned n) {
  uint8_t b[8];
  for (unsigned i = 0; i < n; i++)
    b[i] = (uint8_t)(v >> (8 * i));
  put(e, b, n);
}

static uint32_t crc32_ieee(const uint8_t *p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++)
      c = (c >> 1) ^ (0xedb88320u & -(c & 1));
  }
  return ~c;
}

static void publish_ledger(void) {
  struct enc e = {0};
  put(&e, "ULPL", 4);
  putn(&e, 1, 2);
  putn(&e, 0, 2);
  putn(&e, npatches, 4);
  putn(&e, nstacks, 4);
  for (size_t i = 0; i < npatches; i++) {
    struct lpatch *p = &patches[i];
    put(&e, p->id, 32);
    putn(&e, (uint64_t)p->at, 8);
    size_t cl = strlen(p->container), tl = strlen(p->target);
    if (cl > 65535)
      e.bad = 1;
    putn(&e, cl, 2);
    put(&e, p->container, cl);
    putn(&e, tl, 2);
    put(&e, p->target, tl);
    putn(&e, p->bidlen, 1);
    put(&e, p->bid, p->bidlen);
    putn(&e, p->nlabels, 2);
    for (uint16_t k = 0; k < p->nlabels; k++) {
      size_t ll = strlen(p->labels[k]);
      putn(&e, ll, 2);
      put(&e, p->labels[k], ll);
    }
    putn(&e, p->nred, 4);
    for (uint32_t k = 0; k < 2 * p->nred; k++)
      putn(&e, p->red[k], 8);
  }
  for (size_t i = 0; i < nstacks; i++) {
    struct lstack *s = &stacks[i];
    putn(&e, s->addr, 8);
    putn(&e, s->mech, 1);
    putn(&e, s->eoff, 1);
    putn(&e, s->origlen, 1);
    put(&e, s->orig, s->origlen);
    putn(&e, s->n, 4);
    for (uint32_t k = 0; k < s->n; k++) {
      put(&e, s->e[k].id, 32);
      putn(&e, s->e[k].new_addr, 8);
    }
  }
  if (!e.bad)
    putn(&e, crc32_ieee(e.b, e.n), 4);
  if (e.bad) {
    ulp_disable(ULP_STATE_BROKEN, "patch-on-start: cannot encode the ledger");
    free(e.b);
    return;
  }
  if (e.n > ulp_abi.ledger_cap) {
    size_t size = (e.n + 4095) & ~(size_t)4095;
    void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
      ulp_disable(ULP_STATE_BROKEN, "patch-on-start: no memory for the ledger");
      free(e.b);
      return;
    }
    ulp_abi.ledger = (uint64_t)(uintptr_t)m;
    ulp_abi.ledger_cap = size;
  }
  /* Before the magic is published no agent reads this; the seqlock anyway. */
  __atomic_store_n(&ulp_abi.ledger_seq, ulp_abi.ledger_seq + 1, __ATOMIC_RELAXED);
  __atomic_thread_fence(__ATOMIC_RELEASE);
  memcpy((void *)(uintptr_t)ulp_abi.ledger, e.b, e.n);
  ulp_abi.ledger_len = e.n;
  __atomic_store_n(&ulp_abi.ledger_seq, ulp_abi.ledger_seq + 1, __ATOMIC_RELEASE);
  free(e.b);
}

static int so_name(const struct dirent *d) {
  size_t n = strlen(d->d_name);
  return d->d_name[0] != '.' && n > 3 && strcmp(d->d_name + n - 3, ".so") == 0;
}

void ulp_active_apply(void) {
  /* secure_getenv: a setuid program ignores the variable (its caller must
     not pick the code it runs). */
  const char *dir = secure_getenv("LIBPULP_ACTIVE_DIR");
  if (!dir || !*dir)
    dir = ACTIVE_DIR_DEFAULT;
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return; /* the common case: nothing to apply */
  struct stat st;
  struct dirent **list = NULL;
  int n = -1;
  if (fstat(dfd, &st) != 0 || !safe(&st)) {
    ring_log("unsafe folder ", dir, " (must be owned by root or the process's user, not writable by group or others): nothing applied");
    goto out;
  }
  if (ulp_abi.state != ULP_STATE_READY) {
    ring_log("patching disabled: ", dir, " not applied");
    goto out;
  }
  n = scandirat(dfd, ".", &list, so_name, alphasort);
  if (n <= 0)
    goto out;
  memfd = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
  if (memfd < 0) {
    ring_log("cannot open /proc/self/mem: ", dir, " not applied");
    goto out;
  }
  static char exe[ULP_PATH_MAX];
  ssize_t el = readlink("/proc/self/exe", exe, sizeof exe - 1);
  exe[el > 0 ? el : 0] = '\0';
  const char *exebase = base_name(exe);
  size_t before = npatches;
  for (int i = 0; i < n; i++) {
    static char path[ULP_PATH_MAX];
    size_t dl = strlen(dir), fl = strlen(list[i]->d_name);
    if (dl + 1 + fl >= sizeof path)
      continue;
    memcpy(path, dir, dl);
    path[dl] = '/';
    memcpy(path + dl + 1, list[i]->d_name, fl + 1);
    struct ulp_text detail = {0};
    int fd = openat(dfd, list[i]->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    const char *err = fd < 0 ? "cannot open" : apply_one(path, fd, exebase, &detail);
    /* An applied container's descriptor stays open: the loader knows the
       container by the name /proc/self/fd/N, and a later dlopen of that
       name for a reused N would find it instead of the new file. */
    if (fd >= 0 && err)
      close(fd);
    struct ulp_text t = {0};
    ulp_text_str(&t, err ? "skipped " : "applied ");
    ulp_text_str(&t, path);
    ulp_text_str(&t, ": ");
    ulp_text_str(&t, err ? err : detail.buf);
    if (err && detail.buf[0]) {
      ulp_text_str(&t, " (");
      ulp_text_str(&t, detail.buf);
      ulp_text_str(&t, ")");
    }
    ring_log(t.buf, "", "");
  }
  if (npatches > before)
    publish_ledger();
  close(memfd);
  memfd = -1;
out:
  for (int i = 0; i < n; i++)
    free(list[i]);
  free(list);
  close(dfd);
}
