/* bigctor.c: a container whose constructor needs 160 KiB of stack, more
   than the thread that loads it has. */
#include <string.h>

int bigctor_sum;

__attribute__((constructor)) static void big(void) {
  volatile char buf[160 * 1024];
  memset((char *)buf, 1, sizeof buf);
  for (size_t i = 0; i < sizeof buf; i += 4096)
    bigctor_sum += buf[i];
}
