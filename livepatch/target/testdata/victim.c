/* victim: a target process for livepatch/target tests. It prints the
 * addresses the test compares with what target reads from outside, then
 * "ready", and waits for stdin to close. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <unistd.h>

extern int libvictim_answer(void);

int main(void) {
  void *abi = dlsym(RTLD_DEFAULT, "ulp_abi");
  printf("abi %p\n", abi);
  printf("answer %p\n", (void *)libvictim_answer);
  printf("ready %d\n", libvictim_answer());
  fflush(stdout);
  char c;
  while (read(0, &c, 1) > 0) {
  }
  return 0;
}
