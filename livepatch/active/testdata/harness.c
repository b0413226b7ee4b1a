/* The fuzz harness of the runtime's container parsing (libpulp/active.c,
 * included whole so its static functions are reachable): reads inputs as a
 * u32 length and that many bytes on stdin, parses each as a container file
 * (.ulp payload, .ulp.comments labels) and answers one byte: 0 accepted, 1
 * refused. A crash, or a sanitizer report, ends it. */
#include <stdio.h>
#include <sys/mman.h>

#include "active.c"

struct ulp_abi ulp_abi;
void ulp_ring_append(const char *line) { (void)line; }
void ulp_disable(uint32_t state, const char *reason) { (void)state, (void)reason; }
void ulp_text_str(struct ulp_text *t, const char *s) {
  while (*s && t->len < sizeof t->buf - 1)
    t->buf[t->len++] = *s++;
  t->buf[t->len] = '\0';
}
void ulp_text_u64(struct ulp_text *t, uint64_t v) { (void)v, ulp_text_str(t, "N"); }
void ulp_text_hex(struct ulp_text *t, uint64_t v) { (void)v, ulp_text_str(t, "0xN"); }

static int run(int fd, uint64_t size) {
  uint8_t *payload = NULL, *comments = NULL;
  uint64_t plen = 0, clen = 0;
  struct spec s = {0};
  struct lpatch p = {0};
  const char *err = read_section(fd, size, ".ulp", ULP_MAX_PAYLOAD, &payload, &plen);
  if (!err)
    err = parse(payload, plen, &s);
  if (!err) {
    err = read_section(fd, size, ".ulp.comments", 1u << 20, &comments, &clen);
    if (err == no_section)
      err = NULL;
  }
  if (!err && find_labels(comments, clen, &p) != 0)
    err = "out of memory";
  for (uint16_t i = 0; i < p.nlabels; i++)
    free(p.labels[i]);
  free(p.labels);
  free(payload);
  free(comments);
  free(s.funcs);
  free(s.refs);
  return err != NULL;
}

int main(void) {
  int fd = memfd_create("input", 0);
  if (fd < 0)
    return 2;
  uint32_t n;
  static uint8_t buf[1 << 24];
  while (fread(&n, 4, 1, stdin) == 1) {
    if (n > sizeof buf || fread(buf, 1, n, stdin) != n)
      return 2;
    if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, n, 0) != (ssize_t)n)
      return 2;
    uint8_t r = (uint8_t)run(fd, n);
    if (fwrite(&r, 1, 1, stdout) != 1 || fflush(stdout) != 0)
      return 2;
  }
  return 0;
}
