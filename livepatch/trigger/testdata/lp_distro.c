/* lp_distro: replacements for labs (libc.so.6) and OPENSSL_hexchar2int
 * (libcrypto.so.3) whose results distro.c tells from the originals. */
long labs_lp(long x) { return (x < 0 ? -x : x) + (1L << 40); }

int hexchar2int_lp(unsigned char c) {
  if (c >= '0' && c <= '9')
    return c - '0' + 100;
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 110;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 110;
  return -1;
}
