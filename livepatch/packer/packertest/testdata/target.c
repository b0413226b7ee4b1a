/* A target library for the packer tests: built with
 * -fpatchable-function-entry=16,14, with and without -fcf-protection. */
int counter = 1;
__thread int tlsvar = 5;

/* static: only in .symtab */
static __attribute__((noinline, noclone, used)) int helper(int x) { return x * 3 + counter; }

/* a local name that target2.c also defines */
static __attribute__((noinline, noclone, used)) int twin(void) { return 1; }
int twin_a(void) { return twin(); }

__attribute__((noinline)) int foo(int x) { return helper(x) + 1; }
int bar(void) { return 42; }
int tls_get(void) { return tlsvar; }

/* no entry pad */
__attribute__((patchable_function_entry(0, 0))) int nopad(void) { return 7; }

/* no entry pad and too short for the 5-byte entry jump */
__attribute__((patchable_function_entry(0, 0))) void tiny(void) {}

/* an IFUNC: the process calls what the resolver returns */
static int ifn_impl(void) { return 11; }
static void *ifn_resolve(void) { return (void *)ifn_impl; }
int ifn(void) __attribute__((ifunc("ifn_resolve")));
