/* probe.c: prints every size, offset and constant of ulp_abi.h as
   "NAME VALUE" lines; abi_test.go compares them with the Go mirror. */
#include <stddef.h>
#include <stdio.h>
#include "ulp_abi.h"

#define P(name, v) printf("%s %lld\n", name, (long long)(v))
#define O(s, f) P(#s "." #f, offsetof(struct s, f))

int main(void) {
  P("ULP_ABI_MAGIC", ULP_ABI_MAGIC);
  P("ULP_ABI_VERSION", ULP_ABI_VERSION);
  P("ULP_REQUEST_MAGIC", ULP_REQUEST_MAGIC);
  P("ULP_STATE_READY", ULP_STATE_READY);
  P("ULP_STATE_USER_OFF", ULP_STATE_USER_OFF);
  P("ULP_STATE_RUNTIME_OFF", ULP_STATE_RUNTIME_OFF);
  P("ULP_STATE_BROKEN", ULP_STATE_BROKEN);
  P("ULP_CALL_IDLE", ULP_CALL_IDLE);
  P("ULP_CALL_RUNNING", ULP_CALL_RUNNING);
  P("ULP_CALL_DONE", ULP_CALL_DONE);
  P("ULP_OP_PING", ULP_OP_PING);
  P("ULP_OP_LOAD", ULP_OP_LOAD);
  P("ULP_OP_GROW_LEDGER", ULP_OP_GROW_LEDGER);
  P("ULP_OP_WRITE", ULP_OP_WRITE);
  P("ULP_WRITES_MAX", ULP_WRITES_MAX);
  P("ULP_REQ_NOTIFY", ULP_REQ_NOTIFY);
  P("ULP_EPROT", ULP_EPROT);
  P("ULP_ECHANGED", ULP_ECHANGED);
  P("sizeof(struct ulp_write)", sizeof(struct ulp_write));
  O(ulp_write, addr);
  O(ulp_write, len);
  O(ulp_write, prot);
  O(ulp_write, old);
  O(ulp_write, new_);
  O(ulp_write, map_start);
  O(ulp_write, map_end);
  P("ULP_OK", ULP_OK);
  P("ULP_EAGAIN", ULP_EAGAIN);
  P("ULP_EDISABLED", ULP_EDISABLED);
  P("ULP_ENOTARGET", ULP_ENOTARGET);
  P("ULP_EDLOPEN", ULP_EDLOPEN);
  P("ULP_ENOMEM", ULP_ENOMEM);
  P("ULP_EINVAL", ULP_EINVAL);
  P("ULP_MSG_MAX", ULP_MSG_MAX);
  P("ULP_REASON_MAX", ULP_REASON_MAX);
  P("ULP_VERSION_MAX", ULP_VERSION_MAX);
  P("ULP_PATH_MAX", ULP_PATH_MAX);
  P("ULP_NAME_MAX", ULP_NAME_MAX);
  P("ULP_RING_SIZE", ULP_RING_SIZE);
  P("ULP_STATIC_LEDGER_SIZE", ULP_STATIC_LEDGER_SIZE);
  P("sizeof(struct ulp_abi)", sizeof(struct ulp_abi));
  P("sizeof(struct ulp_call)", sizeof(struct ulp_call));
  P("sizeof(struct ulp_ring)", sizeof(struct ulp_ring));
  P("sizeof(struct ulp_request)", sizeof(struct ulp_request));
  O(ulp_abi, magic);
  O(ulp_abi, version);
  O(ulp_abi, size);
  O(ulp_abi, state);
  O(ulp_abi, entry);
  O(ulp_abi, ledger);
  O(ulp_abi, ledger_cap);
  O(ulp_abi, ledger_len);
  O(ulp_abi, ledger_seq);
  O(ulp_abi, loaded_at);
  O(ulp_abi, call);
  O(ulp_abi, reason);
  O(ulp_abi, version_str);
  O(ulp_abi, ring);
  O(ulp_call, id);
  O(ulp_call, state);
  O(ulp_call, result);
  O(ulp_call, out);
  O(ulp_call, msg);
  O(ulp_ring, seq);
  O(ulp_ring, head);
  O(ulp_ring, buf);
  O(ulp_request, magic);
  O(ulp_request, id);
  O(ulp_request, op);
  O(ulp_request, arg);
  O(ulp_request, path);
  O(ulp_request, target);
  O(ulp_request, gpr);
  O(ulp_request, iret);
  return 0;
}
