/* The replacement functions and the data references of the packer tests. */
struct tls_index {
  unsigned long ti_module, ti_offset;
};
int *counter_ref;
struct tls_index tlsvar_idx;

int foo_lp(int x) { return 1000 + x; }
int helper_lp(int x) { return 2000 + x; }
int twin_lp(void) { return 3; }
