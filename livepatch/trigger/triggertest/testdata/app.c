/* The patched program of the trigger tests. It prints "ready", then answers
 * each command on stdin with one line; the main thread waits in read(2)
 * between commands. main_value is a patchable function of the executable.
 * APP_NAME, when set, becomes its name (prctl PR_SET_NAME, as any program
 * may name itself). APP_SECCOMP=1 installs a seccomp filter that kills the
 * process on mmap with PROT_EXEC (what loading a container does). */
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

static void forbid_exec_mmap(void) {
  struct sock_filter f[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mmap, 0, 3),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2])),
      BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, PROT_EXEC, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {sizeof f / sizeof f[0], f};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog)) {
    perror("seccomp");
    exit(1);
  }
}

int calc_value(void);
int calc_intra(void);
int calc_hidden(void);
long calc_args(int, int, int, int, int, int, int, int, int, int, double, double, double,
               double, double, double, double, double, double, double);
int calc_counter(void);
int calc_tls(void);
int two_value(void);
int calc_page(void);

__attribute__((noipa)) int main_value(void) { return 1; }

int main(void) {
  char line[256];
  if (getenv("APP_NAME"))
    prctl(PR_SET_NAME, getenv("APP_NAME"));
  if (getenv("APP_SECCOMP"))
    forbid_exec_mmap();
  printf("ready\n");
  fflush(stdout);
  while (fgets(line, sizeof line, stdin)) {
    line[strcspn(line, "\n")] = 0;
    long v;
    if (!strcmp(line, "value"))
      v = calc_value();
    else if (!strcmp(line, "intra"))
      v = calc_intra();
    else if (!strcmp(line, "hidden"))
      v = calc_hidden();
    else if (!strcmp(line, "args"))
      v = calc_args(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5,
                    9.5);
    else if (!strcmp(line, "counter"))
      v = calc_counter();
    else if (!strcmp(line, "tls"))
      v = calc_tls();
    else if (!strcmp(line, "two"))
      v = two_value();
    else if (!strcmp(line, "page"))
      v = calc_page();
    else if (!strcmp(line, "main"))
      v = main_value();
    else {
      printf("unknown %s\n", line);
      fflush(stdout);
      continue;
    }
    printf("%ld\n", v);
    fflush(stdout);
  }
  if (!ferror(stdin))
    return 0; /* stdin closed: the test is done with us */
  perror("fgets");
  return 1;
}
