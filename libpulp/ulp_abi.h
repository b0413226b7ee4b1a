/*
 * ulp_abi.h: the contract between the runtime (libpulp.so.0, loaded into a
 * target process) and the ulp agent, which reads and writes this memory from
 * outside with process_vm_readv, /proc/PID/mem and ptrace.
 *
 * This header is the single source of truth. livepatch/abi mirrors it in Go,
 * and a test compiles a C probe against this file and compares every size,
 * offset and constant with the Go values. Change both in one commit, and bump
 * ULP_ABI_VERSION on any layout change.
 *
 * The runtime exports exactly one data symbol, ULP_ABI_SYMBOL ("ulp_abi"), of
 * type struct ulp_abi. The agent finds it in the target's dynamic symbol
 * table and checks magic, version and size before trusting anything else.
 *
 * Layout rules: x86_64 only, little endian, natural alignment, every field
 * explicitly sized, explicit padding. No pointers: addresses are uint64_t in
 * the target's address space.
 */
#ifndef ULP_ABI_H
#define ULP_ABI_H

#include <stdint.h>

#define ULP_ABI_SYMBOL "ulp_abi"
#define ULP_ABI_MAGIC 0x31504c55u /* bytes "ULP1" */
#define ULP_ABI_VERSION 1u

/* ulp_abi.state: whether the runtime accepts patches. */
#define ULP_STATE_READY 0u       /* patching enabled */
#define ULP_STATE_USER_OFF 1u    /* LIBPULP_DISABLE_ON_PATH/USERS/GROUPS matched */
#define ULP_STATE_RUNTIME_OFF 2u /* `ulp set_patchable -p PID disable` */
#define ULP_STATE_BROKEN 3u      /* an internal problem; reason[] says which */

/* ulp_call.state: the one call slot shared by runtime and agent. */
#define ULP_CALL_IDLE 0u
#define ULP_CALL_RUNNING 1u /* a hijacked thread is inside the runtime */
#define ULP_CALL_DONE 2u    /* result, out[] and msg[] are final for call.id */

/* ulp_request.op: what the hijacked thread is asked to do. */
#define ULP_OP_PING 0u /* no effect; result 0. Used by tests and by `ulp check`. */
/*
 * ULP_OP_LOAD: dlopen(request.path, RTLD_NOW | RTLD_LOCAL) the livepatch
 * container, and locate the target object named by request.target (a
 * basename, or "" for the main executable).
 *   out[0] = dlopen handle
 *   out[1] = load bias (l_addr) of the container
 *   out[2] = load bias of the target object
 *   out[3] = TLS module id of the target object (0 if it has no TLS)
 * Errors: ULP_EAGAIN (this thread is inside malloc or the dynamic loader:
 * retry on another thread or later), ULP_EDISABLED (state is not READY),
 * ULP_ENOTARGET (target not loaded), ULP_EDLOPEN (msg[] holds dlerror()),
 * ULP_EINVAL (path is not absolute).
 * The borrowed thread's errno is preserved, and cancellation is disabled
 * while the container's constructors run.
 */
#define ULP_OP_LOAD 1u
/*
 * ULP_OP_GROW_LEDGER: make the ledger area at least arg[0] bytes: mmap a new
 * private anonymous area, copy ledger_len bytes, publish it in ulp_abi.ledger
 * and ledger_cap. The old area is not unmapped (a reader may hold it).
 * Errors: ULP_ENOMEM.
 */
#define ULP_OP_GROW_LEDGER 2u
/*
 * ULP_OP_WRITE: store code bytes atomically while every other thread may
 * run, for the writes the agent may make without stopping them (the entry
 * bytes of a pad, an address slot; docs/security.md). arg[0] is the number
 * of writes (1 to ULP_WRITES_MAX), path[] holds them as struct ulp_write.
 * For each in order the runtime makes the mapping holding it writable
 * (keeping it executable: a thread may be executing there), checks that
 * the bytes are still old[], stores new[] with one store instruction (len
 * 2: an aligned 16-bit store; len 8: a 64-bit store that does not cross a
 * cache line), and gives the mapping back prot. Nothing is written after a
 * failed check or mprotect.
 *   out[0] = the number of writes made
 * Errors: ULP_EPROT (msg[] says why: mprotect refused, e.g. by a security
 * policy; the agent then writes with every thread stopped), ULP_ECHANGED
 * (the bytes were not old[]), ULP_EINVAL.
 */
#define ULP_OP_WRITE 3u
#define ULP_WRITES_MAX 64

/* ulp_call.result values (0 is success). */
#define ULP_OK 0
#define ULP_EAGAIN 1
#define ULP_EDISABLED 2
#define ULP_ENOTARGET 3
#define ULP_EDLOPEN 4
#define ULP_ENOMEM 5
#define ULP_EINVAL 6 /* a malformed request */
#define ULP_EPROT 7    /* ULP_OP_WRITE: the code could not be made writable */
#define ULP_ECHANGED 8 /* ULP_OP_WRITE: the bytes to replace were not the expected ones */

/* ulp_request.flags. */
/*
 * ULP_REQ_NOTIFY: once DONE is published and the thread's signal mask is
 * back, the thread sends itself one signal that has no effect on it: one of
 * SIGWINCH, SIGURG and SIGCHLD whose disposition is SIG_DFL (ignored by
 * default) or SIG_IGN and that its mask does not block (none when all are
 * caught or blocked). An untraced thread discards it; a traced one stops
 * in signal-delivery-stop, which wakes the agent waiting for the call's
 * result (a SIGCHLD to the tracer) instead of polling ulp_abi.call. The
 * agent resumes it with the signal, whose delivery does nothing.
 */
#define ULP_REQ_NOTIFY 1u

#define ULP_MSG_MAX 256
#define ULP_REASON_MAX 256
#define ULP_VERSION_MAX 32
#define ULP_PATH_MAX 4096
#define ULP_NAME_MAX 256
#define ULP_RING_SIZE 8192
#define ULP_STATIC_LEDGER_SIZE 16384
#define ULP_REQUEST_MAGIC 0x5145525f504c55ull /* "ULP_REQ" */

/*
 * struct ulp_call: the result of the last injected call. The runtime sets
 * state = RUNNING and id = request.id on entry, fills result, out and msg,
 * then stores state = DONE with release order. The agent polls state and id
 * with process_vm_readv; it never needs the hijacked thread to stop again.
 * An agent finding state == RUNNING knows another call is in flight (perhaps
 * of an agent that died) and must retry later.
 */
struct ulp_call {
  uint64_t id;
  uint32_t state;
  int32_t result;
  uint64_t out[4];
  char msg[ULP_MSG_MAX];
};

/*
 * struct ulp_ring: the message ring printed by `ulp messages`. Text lines,
 * each ending in '\n', appended at head % ULP_RING_SIZE with wrap-around;
 * head counts every byte ever written. Writers (the runtime inside the
 * process, or the agent while it holds the process) make seq odd, append,
 * advance head, then make seq even. Readers retry while seq is odd or moved.
 */
struct ulp_ring {
  uint64_t seq;
  uint64_t head;
  char buf[ULP_RING_SIZE];
};

/*
 * struct ulp_abi: the exported block. Fields the agent may write: state and
 * reason (set_patchable), ledger_len and ledger_seq and the ledger bytes, the
 * ring, and call.state (back to IDLE after it read a DONE result).
 *
 * The ledger (applied patches and per-function patch stacks) is owned by the
 * agent: the runtime only provides its memory and never interprets it. Its
 * format is livepatch/ledger's. Writers make ledger_seq odd, write the bytes
 * and ledger_len, then make ledger_seq even; readers retry on odd or moved.
 */
struct ulp_abi {
  uint32_t magic;   /* ULP_ABI_MAGIC */
  uint32_t version; /* ULP_ABI_VERSION */
  uint32_t size;    /* sizeof(struct ulp_abi) */
  uint32_t state;   /* ULP_STATE_* */
  uint64_t entry;   /* address of the hijack entry stub, see below */
  uint64_t ledger;  /* address of the ledger area */
  uint64_t ledger_cap;
  uint64_t ledger_len;
  uint64_t ledger_seq;
  uint64_t loaded_at; /* CLOCK_REALTIME seconds when the runtime initialised */
  struct ulp_call call;
  char reason[ULP_REASON_MAX];   /* NUL-terminated; why state != READY */
  char version_str[ULP_VERSION_MAX]; /* the runtime's version, NUL-terminated */
  struct ulp_ring ring;
};

/*
 * struct ulp_request: written by the agent onto the hijacked thread's stack
 * (below its red zone), passed in %rdi to the entry stub.
 *
 * The entry stub is entered with %rsp 64-byte aligned and below the request.
 * It saves the extended FPU state with XSAVE on its own stack, calls the
 * runtime's handler, restores the FPU state with XRSTOR, then loads %rsp =
 * &request.gpr[0], pops the fifteen general registers in gpr[] order and
 * executes IRETQ on iret[]: the thread resumes its own context with no help
 * from the agent, so an agent killed at any moment leaves a working thread.
 * Below the request the thread's stack needs room for the XSAVE area (the
 * size CPUID leaf 0xD gives, at most about 11 KiB) and a few frames: the
 * dlopen of ULP_OP_LOAD runs on a stack of the runtime's own. Asynchronous
 * signals are blocked while the runtime works and delivered once DONE is
 * published; errno is preserved.
 *
 * The agent fills gpr[] and iret[] from the registers it saw at the stop. If
 * the thread was stopped inside a restartable system call (rax is
 * -ERESTARTSYS, -ERESTARTNOINTR or -ERESTARTNOHAND), the agent writes
 * rip - 2 and rax = orig_rax so the call is restarted; for
 * -ERESTART_RESTARTBLOCK it writes rax = __NR_restart_syscall. It sets
 * orig_rax = -1 in the registers it hands the kernel, so the kernel does not
 * restart anything at the stub's address.
 */
struct ulp_request {
  uint64_t magic; /* ULP_REQUEST_MAGIC */
  uint64_t id;    /* echoed in ulp_call.id */
  uint32_t op;    /* ULP_OP_* */
  uint32_t flags; /* ULP_REQ_* */
  uint64_t arg[4];
  char path[ULP_PATH_MAX];   /* ULP_OP_LOAD: the container, NUL-terminated */
  char target[ULP_NAME_MAX]; /* ULP_OP_LOAD: target basename, "" = main program */
  /* pop order: r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi */
  uint64_t gpr[15];
  /* iretq frame: rip cs rflags rsp ss */
  uint64_t iret[5];
};

/*
 * struct ulp_write: one write of ULP_OP_WRITE, in ulp_request.path[]. The
 * runtime changes the protection of the whole mapping [map_start, map_end)
 * that holds the bytes, not of their page alone: a page's mprotect would
 * split the mapping in three for good (the kernel marks a private mapping
 * made writable as accounted, and the flags then differ from its
 * neighbours').
 */
struct ulp_write {
  uint64_t addr;      /* the first byte written */
  uint32_t len;       /* 2 or 8 */
  uint32_t prot;      /* PROT_* of the mapping, given back after the store */
  uint8_t old[8];     /* the bytes expected at addr (len of them) */
  uint8_t new_[8];    /* the bytes stored (len of them) */
  uint64_t map_start; /* the mapping holding [addr, addr+len), page aligned */
  uint64_t map_end;
};

#endif /* ULP_ABI_H */
