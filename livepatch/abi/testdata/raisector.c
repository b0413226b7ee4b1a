/* raisector.c: a container whose constructor sends SIGUSR1 to the thread
   that loads it. */
#include <signal.h>

__attribute__((constructor)) static void raise_usr1(void) { raise(SIGUSR1); }
