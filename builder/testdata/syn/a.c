/* libsyn, translation unit a: the synthetic library of ulp build's tests. */
#include <string.h>

struct node {
  int a;
  int b;
};

static int counter = 5;
static int calls;
static __thread int tls_calls;

int other_tu(int);
extern int syn_hidden; /* hidden in b.c: ld relaxes the GOT load to a lea */

/* The length check that fix_static.patch tightens. */
static __attribute__((noinline)) int check_len(int n) {
  if (n > 10)
    return -1;
  return n * 3;
}

static __attribute__((noinline)) int bump(int x) {
  counter += x;
  return counter;
}

#define SCALE 7

static __attribute__((noinline)) int scale(int x) { return x * SCALE + 1; }

int lib_parse(const char *s) {
  int n = strlen(s);
  int r = check_len(n);
  if (r < 0)
    return other_tu(r);
  calls++;
  return r;
}

int lib_short(int n) { return check_len(n) + 1000; }

int lib_value(int i) {
  if (i < 0)
    return -1;
  return i + 100;
}

int lib_counter(void) { return bump(1); }

int lib_calls(void) { return calls; }

int lib_mix(int x) { return scale(x); }

int lib_node_b(const struct node *n) { return n->b; }

int lib_hidden(void) { return syn_hidden; }

/* Twins: the same code but for the variable each reads. */
static int va = 11, vb = 22;
static __attribute__((noinline)) int get_a(void) { return va; }
static __attribute__((noinline)) int get_b(void) { return vb; }
int lib_ab(int w) { return w ? get_a() : get_b(); }
int lib_set_b(int v) { return vb = v; }

int lib_tls(void) { return ++tls_calls; }
