/* early.c: a library whose constructor allocates; as a dependency of the
   program it is initialised before the preloaded runtime. */
#include <stdlib.h>
#include <string.h>

char *early_text;

__attribute__((constructor)) static void early(void) {
  void *p = malloc(100);
  p = realloc(p, 1000);
  free(p);
  early_text = strdup("early constructor ran");
  void *q = calloc(4, 8);
  free(q);
  if (posix_memalign(&q, 64, 128) == 0)
    free(q);
}
