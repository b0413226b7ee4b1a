/* timeit CMD [ARG...]: runs CMD with its stdin, stdout and stderr, waits for
 * it and prints "timeit NS STATUS" on stderr: its wall time in ns, from
 * just before the fork to the end of the wait, and its wait status. The
 * whole-host benchmark runs it inside the PID namespace of the processes
 * measured (through nsenter), so that the time of nsenter itself is not
 * counted. It exits with CMD's exit code. */
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: timeit CMD [ARG...]\n");
    return 2;
  }
  long long t0 = now();
  pid_t c = fork();
  if (c < 0) {
    perror("timeit: fork");
    return 2;
  }
  if (c == 0) {
    execvp(argv[1], argv + 1);
    perror("timeit: exec");
    _exit(127);
  }
  int st;
  if (waitpid(c, &st, 0) < 0) {
    perror("timeit: waitpid");
    return 2;
  }
  fprintf(stderr, "timeit %lld %d\n", now() - t0, st);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
