/*
 * entry.c: the hijack entry stub and the handler it calls.
 *
 * The agent stops one thread, writes a struct ulp_request (holding that
 * thread's own registers in gpr[] and iret[]) onto its stack, and resumes it
 * at ulp_entry_stub with %rdi = &request and %rsp 64-byte aligned below the
 * request. The stub saves the extended FPU state, calls ulp_handle, restores
 * the FPU state, reloads the fifteen general registers from gpr[] and
 * returns to the interrupted context with IRETQ on iret[]. Nothing in this
 * path needs the agent, so an agent killed at any moment leaves a working
 * thread.
 *
 * The dlopen of op LOAD (the loader, then the container's constructors) runs
 * on a stack of the runtime's own, mapped at the first LOAD, so the borrowed
 * thread's stack only has to hold the request, the XSAVE area and a few
 * frames, whatever size it was created with.
 */
#include <cpuid.h>
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runtime.h"

#define REQ_GPR_OFFSET 4408 /* offsetof(struct ulp_request, gpr) */
#define STR(x) STR2(x)
#define STR2(x) #x
_Static_assert(offsetof(struct ulp_request, gpr) == REQ_GPR_OFFSET, "REQ_GPR_OFFSET");
_Static_assert(offsetof(struct ulp_request, iret) == REQ_GPR_OFFSET + 15 * 8, "iret follows gpr");

/* Bytes of the XSAVE area for the features enabled in XCR0 (CPUID leaf 0xD),
   or 0 when the OS does not enable XSAVE: the stub then uses FXSAVE. */
__attribute__((used)) uint64_t ulp_xsave_size;

void ulp_handle(struct ulp_request *req);

__asm__(
    ".text\n"
    ".globl ulp_entry_stub\n"
    ".hidden ulp_entry_stub\n"
    ".type ulp_entry_stub, @function\n"
    ".p2align 4\n"
    "ulp_entry_stub:\n"
    "  endbr64\n"
    "  cld\n"
    "  movq %rdi, %rbx\n" /* the request; callee-saved across the call */
    "  movq ulp_xsave_size(%rip), %rcx\n"
    "  testq %rcx, %rcx\n"
    "  jz 1f\n"
    "  subq %rcx, %rsp\n"
    "  andq $-64, %rsp\n"
    "  xorl %eax, %eax\n" /* XRSTOR wants the 64-byte header zeroed */
    "  movq %rax, 512(%rsp)\n"
    "  movq %rax, 520(%rsp)\n"
    "  movq %rax, 528(%rsp)\n"
    "  movq %rax, 536(%rsp)\n"
    "  movq %rax, 544(%rsp)\n"
    "  movq %rax, 552(%rsp)\n"
    "  movq %rax, 560(%rsp)\n"
    "  movq %rax, 568(%rsp)\n"
    "  movl $-1, %eax\n"
    "  movl $-1, %edx\n"
    "  xsave64 (%rsp)\n"
    "  jmp 2f\n"
    "1:\n"
    "  subq $512, %rsp\n"
    "  andq $-64, %rsp\n"
    "  fxsave64 (%rsp)\n"
    "2:\n"
    /* A clean FPU environment for C code, whatever the thread had set. */
    "  fninit\n"
    "  subq $64, %rsp\n"
    "  movl $0x1f80, (%rsp)\n"
    "  ldmxcsr (%rsp)\n"
    "  movq %rbx, %rdi\n"
    "  call ulp_handle\n"
    "  addq $64, %rsp\n"
    "  cmpq $0, ulp_xsave_size(%rip)\n"
    "  je 3f\n"
    "  movl $-1, %eax\n"
    "  movl $-1, %edx\n"
    "  xrstor64 (%rsp)\n"
    "  jmp 4f\n"
    "3:\n"
    "  fxrstor64 (%rsp)\n"
    "4:\n"
    "  leaq " STR(REQ_GPR_OFFSET) "(%rbx), %rsp\n"
    "  popq %r15\n"
    "  popq %r14\n"
    "  popq %r13\n"
    "  popq %r12\n"
    "  popq %rbp\n"
    "  popq %rbx\n"
    "  popq %r11\n"
    "  popq %r10\n"
    "  popq %r9\n"
    "  popq %r8\n"
    "  popq %rax\n"
    "  popq %rcx\n"
    "  popq %rdx\n"
    "  popq %rsi\n"
    "  popq %rdi\n"
    "  iretq\n"
    ".size ulp_entry_stub, .-ulp_entry_stub\n");

/* ulp_on_stack calls fn(arg) with %rsp = top (16-byte aligned) and returns
   its result on the caller's stack. */
int32_t ulp_on_stack(int32_t (*fn)(void *), void *arg, void *top);

__asm__(
    ".text\n"
    ".globl ulp_on_stack\n"
    ".hidden ulp_on_stack\n"
    ".type ulp_on_stack, @function\n"
    ".p2align 4\n"
    "ulp_on_stack:\n"
    "  endbr64\n"
    "  pushq %rbp\n"
    "  movq %rsp, %rbp\n"
    "  movq %rdx, %rsp\n"
    "  movq %rdi, %rax\n"
    "  movq %rsi, %rdi\n"
    "  call *%rax\n"
    "  movq %rbp, %rsp\n"
    "  popq %rbp\n"
    "  ret\n"
    ".size ulp_on_stack, .-ulp_on_stack\n");

#define LOAD_STACK_SIZE (256 * 1024)
#define GUARD_SIZE 4096

static char *load_stack_top; /* mapped at the first LOAD */
static int load_stack_busy;  /* set while a call runs on it */

/* load_stack returns the top of the runtime's stack, mapping it (with a
   guard page below) on first use, or NULL when it cannot be had. */
static char *load_stack(void) {
  if (!load_stack_top) {
    char *p = mmap(NULL, LOAD_STACK_SIZE + GUARD_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
      return NULL;
    mprotect(p, GUARD_SIZE, PROT_NONE); /* best effort: a seccomp filter may refuse */
    load_stack_top = p + GUARD_SIZE + LOAD_STACK_SIZE;
  }
  return load_stack_top;
}

void ulp_entry_init(void) {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE))
    return;
  __cpuid_count(0xd, 0, a, b, c, d);
  ulp_xsave_size = b;
}

static int has_nul(const char *s, size_t n) { return memchr(s, '\0', n) != NULL; }

static const char *base_name(const char *p) {
  const char *s = strrchr(p, '/');
  return s ? s + 1 : p;
}

struct find {
  const char *name; /* basename; "" = the main program */
  int found;
  uint64_t bias, modid;
};

static int find_cb(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  struct find *f = arg;
  const char *name = info->dlpi_name ? info->dlpi_name : "";
  /* The main program is the first object, with an empty name. */
  int match = f->name[0] ? (name[0] && strcmp(base_name(name), f->name) == 0) : 1;
  if (!match)
    return 0;
  f->found = 1;
  f->bias = info->dlpi_addr;
  f->modid = info->dlpi_tls_modid;
  return 1;
}

static void set_msg(struct ulp_call *c, const char *s) {
  size_t n = strnlen(s, ULP_MSG_MAX - 1);
  memcpy(c->msg, s, n);
  c->msg[n] = '\0';
}

struct load {
  struct ulp_request *req;
  struct ulp_call *c;
};

/* load_body finds the target and dlopens the container. */
static int32_t load_body(void *arg) {
  struct ulp_request *req = ((struct load *)arg)->req;
  struct ulp_call *c = ((struct load *)arg)->c;
  struct find f = {.name = req->target};
  dl_iterate_phdr(find_cb, &f);
  if (!f.found) {
    set_msg(c, "target not loaded");
    return ULP_ENOTARGET;
  }
  void *h = dlopen(req->path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char *e = dlerror();
    set_msg(c, e ? e : "dlopen failed");
    return ULP_EDLOPEN;
  }
  struct link_map *lm = NULL;
  if (dlinfo(h, RTLD_DI_LINKMAP, &lm) != 0 || !lm) {
    const char *e = dlerror();
    set_msg(c, e ? e : "dlinfo failed");
    return ULP_EDLOPEN;
  }
  c->out[0] = (uint64_t)(uintptr_t)h;
  c->out[1] = lm->l_addr;
  c->out[2] = f.bias;
  c->out[3] = f.modid;
  return ULP_OK;
}

static int32_t op_load(struct ulp_request *req, struct ulp_call *c, struct ulp_text *log) {
  ulp_text_str(log, "load ");
  ulp_text_str(log, req->path);
  ulp_text_str(log, " for ");
  ulp_text_str(log, req->target[0] ? req->target : "the main program");
  ulp_text_str(log, ": ");
  if (__atomic_load_n(&ulp_abi.state, __ATOMIC_ACQUIRE) != ULP_STATE_READY) {
    set_msg(c, ulp_abi.reason);
    return ULP_EDISABLED;
  }
  if (ulp_in_malloc()) {
    set_msg(c, "thread is inside the allocator");
    return ULP_EAGAIN;
  }
  if (ulp_in_loader()) {
    set_msg(c, "thread is inside the dynamic loader");
    return ULP_EAGAIN;
  }
  if (req->path[0] != '/') {
    set_msg(c, "container path not absolute");
    return ULP_EINVAL;
  }
  /* The container's constructors must not act on a cancellation request
     pending for the borrowed thread. */
  int cancel_state;
  pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
  struct load l = {.req = req, .c = c};
  char *top = load_stack();
  int32_t r;
  if (top && !__atomic_exchange_n(&load_stack_busy, 1, __ATOMIC_ACQUIRE)) {
    r = ulp_on_stack(load_body, &l, top);
    __atomic_store_n(&load_stack_busy, 0, __ATOMIC_RELEASE);
  } else {
    r = load_body(&l); /* no stack of our own: stay on the thread's */
  }
  pthread_setcancelstate(cancel_state, NULL);
  return r;
}

static int32_t op_grow_ledger(struct ulp_request *req, struct ulp_call *c) {
  uint64_t want = req->arg[0];
  if (want <= ulp_abi.ledger_cap)
    return ULP_OK;
  if (want > (1ull << 30)) {
    set_msg(c, "ledger size above 1 GiB");
    return ULP_EINVAL;
  }
  size_t size = (want + 4095) & ~(uint64_t)4095;
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    set_msg(c, "mmap failed");
    return ULP_ENOMEM;
  }
  /* Publish under the ledger seqlock; the old area stays mapped for readers
     that still hold its address. */
  uint64_t seq = __atomic_load_n(&ulp_abi.ledger_seq, __ATOMIC_RELAXED);
  uint64_t start = (seq & 1) ? seq + 2 : seq + 1;
  __atomic_store_n(&ulp_abi.ledger_seq, start, __ATOMIC_RELAXED);
  __atomic_thread_fence(__ATOMIC_RELEASE);
  uint64_t len = ulp_abi.ledger_len;
  if (len > ulp_abi.ledger_cap)
    len = ulp_abi.ledger_cap;
  memcpy(p, (void *)(uintptr_t)ulp_abi.ledger, len);
  __atomic_store_n(&ulp_abi.ledger, (uint64_t)(uintptr_t)p, __ATOMIC_RELAXED);
  __atomic_store_n(&ulp_abi.ledger_cap, size, __ATOMIC_RELAXED);
  __atomic_store_n(&ulp_abi.ledger_seq, start + 1, __ATOMIC_RELEASE);
  c->out[0] = (uint64_t)(uintptr_t)p;
  c->out[1] = size;
  return ULP_OK;
}

/* store_code stores w->new_ over w->old at w->addr with one store
   instruction, if the bytes there are still w->old. The caller checked
   that the store is one a thread fetching those bytes sees whole (see
   op_write). */
static int32_t store_code(const struct ulp_write *w) {
  void *p = (void *)(uintptr_t)w->addr;
  if (memcmp(p, w->old, w->len) != 0)
    return ULP_ECHANGED;
  if (w->len == 2) {
    uint16_t v;
    memcpy(&v, w->new_, 2);
    __atomic_store_n((uint16_t *)p, v, __ATOMIC_RELEASE);
  } else {
    uint64_t v;
    memcpy(&v, w->new_, 8);
    /* One movq: x86-64 makes an 8-byte store that stays within a cache
       line single-copy atomic even when it is not 8-byte aligned (the
       address slot of a pad sits at entry-8, 2 mod 8). */
    __asm__ volatile("movq %1, (%0)" : : "r"(p), "r"(v) : "memory");
  }
  return ULP_OK;
}

/* op_write makes the writes of an ULP_OP_WRITE request (ulp_abi.h). Every
   other thread may run meanwhile, even inside the bytes written: each store
   replaces whole instructions (or a jump's address slot, read by one load)
   by one store instruction, which an instruction fetch or a load observes
   either entirely before or entirely after. */
static int32_t op_write(struct ulp_request *req, struct ulp_call *c, struct ulp_text *log) {
  uint64_t n = req->arg[0];
  ulp_text_str(log, "write ");
  ulp_text_u64(log, n);
  ulp_text_str(log, " code site(s): ");
  if (n == 0 || n > ULP_WRITES_MAX) {
    set_msg(c, "bad number of writes");
    return ULP_EINVAL;
  }
  const struct ulp_write *ws = (const struct ulp_write *)req->path;
  for (uint64_t i = 0; i < n; i++) {
    const struct ulp_write *w = &ws[i];
    int one_store = (w->len == 2 && w->addr % 2 == 0) ||
                    (w->len == 8 && w->addr / 64 == (w->addr + 7) / 64);
    int in_map = w->map_start <= w->addr && w->addr + w->len <= w->map_end;
    if (!one_store || !in_map || (w->prot & ~(uint32_t)(PROT_READ | PROT_WRITE | PROT_EXEC))) {
      set_msg(c, "a write that one store cannot make");
      return ULP_EINVAL;
    }
  }
  long pagesz = sysconf(_SC_PAGESIZE);
  for (uint64_t i = 0; i < n; i++) {
    const struct ulp_write *w = &ws[i];
    if (w->map_start % (uint64_t)pagesz != 0 || w->map_end % (uint64_t)pagesz != 0) {
      set_msg(c, "mapping not page aligned");
      c->out[0] = i;
      return ULP_EINVAL;
    }
    uintptr_t start = w->map_start;
    size_t len = w->map_end - w->map_start;
    /* The whole mapping (ulp_abi.h, struct ulp_write), executable
       throughout: a thread may be running on it. */
    if (mprotect((void *)start, len, PROT_READ | PROT_WRITE | PROT_EXEC) != 0) {
      if (errno == EACCES)
        set_msg(c, "mprotect refused: a security policy forbids writable code");
      else
        set_msg(c, "mprotect failed");
      c->out[0] = i;
      return ULP_EPROT;
    }
    int32_t r = store_code(w);
    if (mprotect((void *)start, len, (int)w->prot) != 0 && r == ULP_OK) {
      set_msg(c, "mprotect failed giving the protection back");
      r = ULP_EPROT;
    }
    if (r != ULP_OK) {
      if (r == ULP_ECHANGED)
        set_msg(c, "the code changed since the agent read it");
      c->out[0] = i + (r == ULP_EPROT);
      return r;
    }
  }
  c->out[0] = n;
  return ULP_OK;
}

/* notify sends the thread a signal that has no effect on it (ULP_REQ_NOTIFY
   in ulp_abi.h): SIGWINCH, SIGURG or SIGCHLD, the first whose disposition is
   SIG_DFL or SIG_IGN and that mask does not block. */
static void notify(const sigset_t *mask) {
  static const int sigs[] = {SIGWINCH, SIGURG, SIGCHLD};
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
    struct sigaction sa;
    if (sigismember(mask, sigs[i]) || sigaction(sigs[i], NULL, &sa) != 0)
      continue;
    if (!(sa.sa_flags & SA_SIGINFO) && (sa.sa_handler == SIG_DFL || sa.sa_handler == SIG_IGN)) {
      syscall(SYS_tgkill, getpid(), gettid(), sigs[i]);
      return;
    }
  }
}

static const char *result_text(int32_t r) {
  switch (r) {
  case ULP_OK:
    return "ok";
  case ULP_EAGAIN:
    return "busy, retry";
  case ULP_EDISABLED:
    return "patching disabled";
  case ULP_ENOTARGET:
    return "target not loaded";
  case ULP_EDLOPEN:
    return "dlopen failed";
  case ULP_ENOMEM:
    return "out of memory";
  case ULP_EPROT:
    return "code not writable";
  case ULP_ECHANGED:
    return "code changed";
  default:
    return "invalid request";
  }
}

/* ulp_handle runs on the hijacked thread, called by the stub. */
__attribute__((used)) void ulp_handle(struct ulp_request *req) {
  /* The thread may have been stopped between a failing call and its read of
     errno: give it back its errno. */
  int saved_errno = errno;
  /* No asynchronous signal handler runs on this thread while the runtime
     works (one could re-enter the loader, or longjmp out before DONE); a
     signal that arrives meanwhile is delivered once DONE is published.
     glibc never blocks its own SIGCANCEL and SIGSETXID. */
  sigset_t block, saved_mask;
  sigfillset(&block);
  sigdelset(&block, SIGSEGV);
  sigdelset(&block, SIGBUS);
  sigdelset(&block, SIGILL);
  sigdelset(&block, SIGFPE);
  sigdelset(&block, SIGTRAP);
  pthread_sigmask(SIG_BLOCK, &block, &saved_mask);
  struct ulp_call *c = &ulp_abi.call;
  __atomic_store_n(&c->id, req->id, __ATOMIC_RELAXED);
  __atomic_store_n(&c->state, ULP_CALL_RUNNING, __ATOMIC_RELEASE);
  memset(c->out, 0, sizeof c->out);
  c->msg[0] = '\0';
  struct ulp_text log = {0};
  int32_t r;
  if (req->magic != ULP_REQUEST_MAGIC ||
      (req->op != ULP_OP_WRITE && !has_nul(req->path, sizeof req->path)) ||
      !has_nul(req->target, sizeof req->target)) {
    set_msg(c, "malformed request");
    ulp_text_str(&log, "malformed request: ");
    r = ULP_EINVAL;
  } else {
    switch (req->op) {
    case ULP_OP_PING:
      ulp_text_str(&log, "ping: ");
      r = ULP_OK;
      break;
    case ULP_OP_LOAD:
      r = op_load(req, c, &log);
      break;
    case ULP_OP_WRITE:
      r = op_write(req, c, &log);
      break;
    case ULP_OP_GROW_LEDGER:
      ulp_text_str(&log, "grow ledger to ");
      ulp_text_u64(&log, req->arg[0]);
      ulp_text_str(&log, " bytes: ");
      r = op_grow_ledger(req, c);
      break;
    default:
      set_msg(c, "unknown op");
      ulp_text_str(&log, "unknown op: ");
      r = ULP_EINVAL;
    }
  }
  ulp_text_str(&log, result_text(r));
  if (r != ULP_OK && c->msg[0]) {
    ulp_text_str(&log, " (");
    ulp_text_str(&log, c->msg);
    ulp_text_str(&log, ")");
  }
  if (req->op != ULP_OP_PING || r != ULP_OK)
    ulp_ring_append(log.buf);
  c->result = r;
  uint32_t flags = req->flags; /* the request may be reused once DONE is out */
  __atomic_store_n(&c->state, ULP_CALL_DONE, __ATOMIC_RELEASE);
  pthread_sigmask(SIG_SETMASK, &saved_mask, NULL);
  if (flags & ULP_REQ_NOTIFY)
    notify(&saved_mask);
  errno = saved_errno;
}
