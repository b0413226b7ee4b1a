/* parent: forks argv[2] (with the rest of argv) as a child sharing stdin and
 * stdout, writes "child PID" to the file argv[1], then waits for the child
 * with WUNTRACED and appends "stopped" to the file whenever it sees the
 * child stop, "exited" when it ends. */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 3)
    return 2;
  int go[2];
  if (pipe(go) != 0)
    return 1;
  pid_t pid = fork();
  if (pid == 0) {
    /* Start (and print "ready") only once the status file is written. */
    char c;
    close(go[1]);
    if (read(go[0], &c, 1) != 1)
      _exit(126);
    close(go[0]);
    execv(argv[2], argv + 2);
    _exit(127);
  }
  close(go[0]);
  FILE *f = fopen(argv[1], "w");
  if (!f)
    return 1;
  fprintf(f, "child %d\n", (int)pid);
  fflush(f);
  if (write(go[1], "g", 1) != 1)
    return 1;
  close(go[1]);
  for (;;) {
    int st;
    if (waitpid(pid, &st, WUNTRACED) < 0)
      break;
    if (WIFSTOPPED(st)) {
      fprintf(f, "stopped\n");
      fflush(f);
    } else if (WIFEXITED(st) || WIFSIGNALED(st)) {
      fprintf(f, "exited\n");
      fflush(f);
      break;
    }
  }
  return 0;
}
