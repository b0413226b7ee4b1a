/* mallocbench.c: argv[1] rounds of malloc(32) + free, the hot path the
   runtime's allocator wrappers add to. */
#include <stdlib.h>

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 0;
  for (long i = 0; i < n; i++) {
    void *volatile p = malloc(32);
    free(p);
  }
  return 0;
}
