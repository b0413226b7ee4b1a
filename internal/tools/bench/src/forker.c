/* The whole-host benchmark's parent: started with the runtime preloaded, it
 * forks argv[1] children that sleep in pause() (and die with it), prints
 * "ready", then answers each stdin line with bench_target(0): 1, and 2 once
 * patched. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>

long bench_target(long);

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 1;
  pid_t parent = getpid();
  for (int i = 0; i < n; i++) {
    pid_t c = fork();
    if (c < 0) {
      printf("fork failed after %d children\n", i);
      fflush(stdout);
      return 1;
    }
    if (c == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent)
        _exit(0);
      for (;;)
        pause();
    }
  }
  printf("ready\n");
  fflush(stdout);
  char line[64];
  while (fgets(line, sizeof line, stdin)) {
    printf("%ld\n", bench_target(0));
    fflush(stdout);
  }
  return 0;
}
