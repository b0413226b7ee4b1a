/*
 * runtime.h: declarations shared by the runtime's C files. Nothing here is
 * exported: the build hides every symbol except ulp_abi and the interposed
 * allocator functions (libpulp.map).
 */
#ifndef ULP_RUNTIME_H
#define ULP_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include "ulp_abi.h"

/* The Makefile passes -DULP_RUNTIME_VERSION='"$(VERSION)"'. */
#ifndef ULP_RUNTIME_VERSION
#define ULP_RUNTIME_VERSION "0.1.0"
#endif

/* The exported block (runtime.c). */
extern struct ulp_abi ulp_abi;

/* A small fixed buffer for composing messages without malloc or stdio, so
   the code that runs on a hijacked thread stays async-signal-safe. */
struct ulp_text {
  char buf[ULP_MSG_MAX + ULP_PATH_MAX / 16];
  size_t len;
};
void ulp_text_str(struct ulp_text *t, const char *s);
void ulp_text_u64(struct ulp_text *t, uint64_t v);
void ulp_text_hex(struct ulp_text *t, uint64_t v);

/* ulp_ring_append appends one line (a '\n' is added) to the message ring,
   following the seqlock protocol of struct ulp_ring. */
void ulp_ring_append(const char *line);

/* ulp_disable records state (USER_OFF or BROKEN) and its reason, and logs
   the reason to the ring. The first reason wins. */
void ulp_disable(uint32_t state, const char *reason);

/* interpose.c: ulp_interpose_init resolves the next allocator definitions;
   ulp_in_malloc tells whether this thread is inside an allocator call. */
void ulp_interpose_init(void);
int ulp_in_malloc(void);

/* loader.c: ulp_loader_init finds the dynamic loader's locks (returns 0, or
   -1 with a reason in why); ulp_in_loader tells whether this thread holds
   one of them. */
int ulp_loader_init(const char **why);
int ulp_in_loader(void);

/* entry.c: the hijack entry stub and its set-up. */
void ulp_entry_stub(void);
void ulp_entry_init(void);

/* active.c: ulp_active_apply applies the containers of the patch-on-start
   folder (LIBPULP_ACTIVE_DIR, default /var/lib/ulp/active) and records them
   in the ledger; problems are logged to the ring, never fatal. */
void ulp_active_apply(void);

#endif /* ULP_RUNTIME_H */
