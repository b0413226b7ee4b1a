/* errnoctor.c: a container whose constructor leaves errno set (EBADF). */
#include <unistd.h>

__attribute__((constructor)) static void set_errno(void) { close(-1); }
